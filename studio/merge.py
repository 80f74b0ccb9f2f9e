"""The merge stage: fold the trained adapter into the 16-bit base model, giving a plain model folder.

The base is always reloaded from its 16-bit files, never from the 4-bit copy a QLoRA run trained against:
merging into rounded 4-bit weights would bake the rounding error into the result.

A merged folder records which weights it came from (their step and a hash of their files, in SOURCE_FILE);
a run trained further after a merge (stopped, exported, resumed) has new weights, so its old merge is stale
and `merge_is_current` says so: export merges again rather than ship the old model.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Callable

from studio.errors import Cancelled, ExportError
from studio.fileio import disk_full_message, is_disk_full, staged_dir
from studio.train.events import read_events
from studio.train.runs import EVENTS_FILE, load_run_project, trained_weights_dir

Progress = Callable[[str, float], None]
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
                   "chat_template.jinja", "generation_config.json", "added_tokens.json", "vocab.json", "merges.txt")
# Merge small models in float32 (exact), big ones in their own 16-bit type (a 7B model in fp32 needs 28 GB of RAM).
FP32_MERGE_LIMIT_BYTES = 6 * 1024**3


SOURCE_FILE = "studio_merged_from.json"


def merged_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "merged"


def folder_hash(folder: Path) -> str:
    """SHA-256 over every file of a folder (names and contents), in name order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        with path.open("rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()


def weights_source(run_dir: Path) -> dict | None:
    """What a merge of this run would be made from now: the weights folder, the step it was saved at, and
    the hash of its files; None when the run has no trained weights."""
    weights = trained_weights_dir(run_dir)
    if weights is None:
        return None
    done = [e for e in read_events(Path(run_dir) / EVENTS_FILE) if e.get("type") == "done"]
    return {"weights": weights.name, "step": done[-1].get("step") if done else None, "sha256": folder_hash(weights)}


def recorded_source(run_dir: Path) -> dict | None:
    try:
        return json.loads((merged_dir(run_dir) / SOURCE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def merge_is_current(run_dir: Path) -> bool:
    """Whether merged/ holds exactly the run's present weights. A merged folder with nothing trained beside
    it (placed there by hand) is taken as it is; one without a record, or from other weights, is stale."""
    if not (merged_dir(run_dir) / "config.json").is_file():
        return False
    source = weights_source(run_dir)
    if source is None:
        return True
    recorded = recorded_source(run_dir)
    return recorded is not None and recorded.get("sha256") == source["sha256"]


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
    source = weights_source(run_dir)  # taken before loading, so the record names what was read
    trust = project.model.trust_remote_code

    def check() -> None:
        if cancelled and cancelled():
            raise Cancelled("Merging was cancelled; nothing was kept.")

    try:
        with staged_dir(target) as tmp:
            if weights.name == "model":  # a full fine-tune is already a whole model
                say("Copying the fully fine-tuned model", 0.2)
                model = AutoModelForCausalLM.from_pretrained(str(weights), dtype=torch.bfloat16,
                                                             trust_remote_code=trust)
            else:
                from peft import PeftModel

                size = sum(f.stat().st_size for f in base_dir.glob("*.safetensors"))
                work_dtype = torch.float32 if size < FP32_MERGE_LIMIT_BYTES else torch.bfloat16
                say("Loading the 16-bit base model", 0.1)
                base = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=work_dtype, trust_remote_code=trust)
                check()
                say("Merging the adapter", 0.5)
                model = PeftModel.from_pretrained(base, str(weights)).merge_and_unload()
            check()
            say("Saving the merged model", 0.8)
            model = model.to(torch.bfloat16)
            model.config.dtype = torch.bfloat16
            model.save_pretrained(str(tmp), safe_serialization=True)
            for name in TOKENIZER_FILES:  # the tokenizer the run trained with, chat template included
                tokenizer_file = weights / name if (weights / name).is_file() else base_dir / name
                if tokenizer_file.is_file():
                    shutil.copy2(tokenizer_file, tmp / name)
            (tmp / SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        if is_disk_full(exc):
            need = sum(f.stat().st_size for f in base_dir.glob("*.safetensors"))
            raise ExportError(disk_full_message(run_dir, "the merged model", need)) from None
        raise
    say("Merged", 1.0)
    return target
