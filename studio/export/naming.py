"""Where an export's files go and what they are called: shared by the preflight and the pipeline, so the
files checked before export are exactly the files written."""
from __future__ import annotations

import re
from pathlib import Path

SIXTEEN_BIT = ("f16", "bf16")


def gguf_basename(project) -> str:
    name = project.export.model_name or project.name
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "model"


def sixteen_bit_source(quants: list[str]) -> str:
    """The 16-bit type the converter writes first; every other type is quantized from it."""
    return "bf16" if "bf16" in quants and "f16" not in quants else "f16"


def output_folder(project, run_dir: Path, out_dir: Path | None = None) -> Path:
    """Where an export writes: the folder asked for, else the project's [export] output_dir, else the run's
    export/. A relative output_dir belongs to the project's folder; run copies made before that was fixed
    hold it as written, so it is resolved from runs/<project>/<run>/ up to the project's folder."""
    run_dir = Path(run_dir).resolve()
    if out_dir:
        return Path(out_dir).expanduser().resolve()
    if not project.export.output_dir:
        return run_dir / "export"
    chosen = Path(project.export.output_dir).expanduser()
    if chosen.is_absolute():
        return chosen
    project_folder = run_dir.parents[2] if run_dir.parent.parent.name == "runs" else run_dir
    return (project_folder / chosen).resolve()


def export_targets(project, quants: list[str], out_dir: Path) -> dict:
    """{"gguf": {quant: final path}, "modelfile": path, "report": path} for an export into `out_dir`."""
    base = gguf_basename(project)
    out_dir = Path(out_dir)
    return {"gguf": {q: out_dir / f"{base}-{q.upper()}.gguf" for q in quants},
            "modelfile": out_dir / "Modelfile", "report": out_dir / "report.json"}


def intermediate_path(project, out_dir: Path, quant: str) -> Path:
    """A hidden name for the 16-bit file made only as the quantizer's input, so it can never replace (and
    then delete) a file of that name the user kept from an earlier export."""
    return Path(out_dir) / f".{gguf_basename(project)}-{quant.upper()}.intermediate.gguf"
