"""Export a run: merge if needed, convert to a 16-bit GGUF, quantize to each requested type, write the
Modelfile. Each file appears under its final name only when complete; a failure part-way keeps (and
reports) the files finished before it."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from studio.errors import Cancelled, StudioError
from studio.export.converter import convert_to_gguf
from studio.export.modelfile import render_modelfile
from studio.export.quantize import quantize
from studio.fileio import atomic_write_text, staged_file
from studio.merge import merge_run, merged_dir
from studio.train.runs import load_run_project

Progress = Callable[[str, float], None]


@dataclass
class ExportResult:
    files: dict[str, Path] = field(default_factory=dict)  # quant type -> GGUF path
    modelfile: Path | None = None
    failed: dict[str, str] = field(default_factory=dict)  # quant type -> why


def gguf_basename(project) -> str:
    name = project.export.model_name or project.name
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "model"


def export_run(run_dir: Path, quants: list[str] | None = None, progress: Progress | None = None,
               cancelled: Callable[[], bool] | None = None, out_dir: Path | None = None) -> ExportResult:
    run_dir = Path(run_dir)
    project = load_run_project(run_dir)
    quants = quants or project.export.quant
    say = progress or (lambda message, fraction: None)
    out_dir = Path(out_dir or project.export.output_dir or run_dir / "export")
    model_dir = merged_dir(run_dir)
    if not (model_dir / "config.json").is_file():
        merge_run(run_dir, lambda m, f: say(m, 0.25 * f))
    base = gguf_basename(project)
    result = ExportResult()
    sixteen = "bf16" if "bf16" in quants and "f16" not in quants else "f16"
    f16_path = out_dir / f"{base}-{sixteen.upper()}.gguf"
    say(f"Converting to {sixteen.upper()} GGUF", 0.3)
    with staged_file(f16_path) as tmp:
        convert_to_gguf(model_dir, tmp, sixteen, lambda m, f: say(m, 0.3 + 0.3 * f), cancelled)
    result.files[sixteen] = f16_path
    others = [q for q in quants if q != sixteen]
    for i, quant in enumerate(others):
        target = out_dir / f"{base}-{quant.upper()}.gguf"
        say(f"Quantizing to {quant.upper()}", 0.6 + 0.35 * i / max(1, len(others)))
        try:
            with staged_file(target) as tmp:
                quantize(f16_path, tmp, quant, cancelled)
            result.files[quant] = target
        except Cancelled:
            raise
        except StudioError as exc:
            result.failed[quant] = str(exc)
    if sixteen not in quants:  # made only as the quantizer's input
        f16_path.unlink(missing_ok=True)
        del result.files[sixteen]
    if result.files:
        chosen = next((result.files[q] for q in ("q4_k_m", "q8_0", "q5_k_m", "q6_k") if q in result.files),
                      next(iter(result.files.values())))
        result.modelfile = out_dir / "Modelfile"
        atomic_write_text(result.modelfile, render_modelfile(chosen.name, model_dir, project.data.system_prompt))
    say("Export finished", 1.0)
    return result
