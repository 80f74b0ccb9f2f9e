"""Where an export's files go and what they are called: shared by the preflight and the pipeline, so the
files checked before export are exactly the files written."""
from __future__ import annotations

import re
from pathlib import Path

from studio.vocabulary import QUANT_TYPES

SIXTEEN_BIT = tuple(q.name for q in QUANT_TYPES.values() if q.sixteen_bit)


def gguf_basename(project) -> str:
    """The exported files' name (and the Ollama model's): the export's model name, else the project's; a
    project still named after the pirate sample but trained on the user's own data takes that data's name."""
    from studio.starter import name_after_data

    name = name_after_data(project) or project.export.model_name or project.name
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "model"


def sixteen_bit_source(quants: list[str]) -> str:
    """The 16-bit type the converter writes first; every other type is quantized from it."""
    return "bf16" if "bf16" in quants and "f16" not in quants else "f16"


def export_folder(run_dir: Path, project, out_dir: Path | None = None) -> Path:
    """Where a run's export goes, and where it is found again (the pipeline, the preflight, the Export and Test
    pages, the CLI): the folder asked for, else the project's [export] output_dir, else the run folder's
    export/. A relative output_dir belongs to the project's folder; run copies made before runs kept it
    absolute hold it as written, so it is resolved from runs/<project>/<run>/ up to the project's folder."""
    run_dir = Path(run_dir).resolve()
    if out_dir:
        return Path(out_dir).expanduser().resolve()
    if project is None or not project.export.output_dir:
        return run_dir / "export"
    chosen = Path(project.export.output_dir).expanduser()
    if chosen.is_absolute():
        return chosen
    if project.path is not None and project.path.resolve().parent != run_dir:  # the project, not a run's copy
        return project.resolve(str(chosen))
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
