"""The merge stage: fold the trained adapter into the 16-bit base model, giving a plain model folder.

The base is always reloaded from its 16-bit files, never from the 4-bit copy a QLoRA run trained against:
merging into rounded 4-bit weights would bake the rounding error into the result.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

from studio.errors import Cancelled, ExportError
from studio.fileio import staged_dir
from studio.progress import Progress
from studio.train.runs import load_run_project, trained_weights_dir

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
                   "chat_template.jinja", "generation_config.json", "added_tokens.json", "vocab.json", "merges.txt")
# Merge small models in float32 (exact), big ones in their own 16-bit type (a 7B model in fp32 needs 28 GB of RAM).
FP32_MERGE_LIMIT_BYTES = 6 * 1024**3


def merged_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "merged"


def merge_run(run_dir: Path, progress: Progress | None = None, cancelled: Callable[[], bool] | None = None) -> Path:
    """Merge the run's adapter into its 16-bit base (or copy a full fine-tune) into merged/; a cancel between
    its steps (loading, merging, saving take a minute each for a 7B model) leaves no merged/ behind."""
    import torch
    from transformers import AutoModelForCausalLM

    from studio.models import resolve_model

    run_dir = Path(run_dir)
    project = load_run_project(run_dir)
    weights = trained_weights_dir(run_dir)
    if weights is None:
        raise ExportError(f"The run {run_dir.name} has no trained weights yet. Train (or stop-and-save) first.")
    say = progress or (lambda message, fraction: None)
    base_dir = resolve_model(project.model.name)
    target = merged_dir(run_dir)

    def check() -> None:
        if cancelled and cancelled():
            raise Cancelled("Merging was cancelled; nothing was kept.")

    with staged_dir(target) as tmp:
        if weights.name == "model":  # a full fine-tune is already a whole model
            say("Copying the fully fine-tuned model", 0.2)
            model = AutoModelForCausalLM.from_pretrained(str(weights), dtype=torch.bfloat16)
        else:
            from peft import PeftModel

            size = sum(f.stat().st_size for f in base_dir.glob("*.safetensors"))
            work_dtype = torch.float32 if size < FP32_MERGE_LIMIT_BYTES else torch.bfloat16
            say("Loading the 16-bit base model", 0.1)
            base = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=work_dtype)
            check()
            say("Merging the adapter", 0.5)
            model = PeftModel.from_pretrained(base, str(weights)).merge_and_unload()
        check()
        say("Saving the merged model", 0.8)
        model = model.to(torch.bfloat16)
        model.config.dtype = torch.bfloat16
        model.save_pretrained(str(tmp), safe_serialization=True)
        for name in TOKENIZER_FILES:  # the tokenizer the run trained with, chat template included
            source = weights / name if (weights / name).is_file() else base_dir / name
            if source.is_file():
                shutil.copy2(source, tmp / name)
    say("Merged", 1.0)
    return target
