"""The trained LoRA adapter alone as a llama.cpp LoRA GGUF, for users who keep the base model's GGUF and load
the adapter on top (`llama-cli -m base.gguf --lora adapter.gguf`, or ADAPTER in an Ollama Modelfile)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from studio.errors import ExportError
from studio.export.converter import convert_lora_to_gguf
from studio.export.naming import gguf_basename, output_folder
from studio.fileio import staged_file
from studio.train.runs import load_run_project, trained_weights_dir

Progress = Callable[[str, float], None]


def adapter_problems(run_dir: Path) -> list[str]:
    """Why this run's adapter cannot be a llama.cpp LoRA GGUF; [] when it can."""
    weights = trained_weights_dir(run_dir)
    if weights is None:
        return [f"The run {Path(run_dir).name} has no trained weights yet. Train (or stop-and-save) first."]
    config_path = weights / "adapter_config.json"
    if not config_path.is_file():
        return ["This run is a full fine-tune: there is no adapter to export on its own. Export the whole "
                "model instead (without --adapter)."]
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if config.get("use_dora"):
        return ["DoRA adapters have no llama.cpp adapter format (llama.cpp applies only LoRA's A and B). "
                "Export the merged model instead (without --adapter)."]
    if config.get("use_rslora"):
        return ["rsLoRA scales the adapter by alpha/sqrt(rank), which a llama.cpp adapter cannot express. "
                "Export the merged model instead (without --adapter)."]
    return []


def export_adapter(run_dir: Path, out_dir: Path | None = None, overwrite: bool = False,
                   progress: Progress | None = None, cancelled: Callable[[], bool] | None = None) -> Path:
    from studio.models import resolve_model

    run_dir = Path(run_dir).resolve()
    problems = adapter_problems(run_dir)
    if problems:
        raise ExportError(" ".join(problems))
    project = load_run_project(run_dir)
    out_dir = output_folder(project, run_dir, out_dir)
    target = out_dir / f"{gguf_basename(project)}-LoRA-F16.gguf"
    if target.exists() and not overwrite:
        raise ExportError(f"{target.name} already exists in {out_dir}. Choose another output folder, or allow "
                          "overwriting (--overwrite).")
    base_dir = resolve_model(project.model.name)  # only its config.json is read: the converter maps names
    with staged_file(target) as tmp:
        convert_lora_to_gguf(trained_weights_dir(run_dir), base_dir, tmp, "f16", progress, cancelled)
    return target
