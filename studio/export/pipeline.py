"""Export a run: preflight, merge if needed, convert to a 16-bit GGUF, quantize to each requested type, write
the Modelfile, check every file against the merged model, hand off to Ollama / LM Studio.

Nothing is written before the preflight passes. Each file appears under its final name only when complete; a
failure part-way keeps (and reports) the files finished before it; a cancel removes the unfinished ones.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from studio.errors import Cancelled, ExportError, StudioError
from studio.export.converter import convert_to_gguf
from studio.export.modelfile import render_modelfile
from studio.export.naming import SIXTEEN_BIT, export_targets, intermediate_path, sixteen_bit_source
from studio.export.preflight import Preflight, preflight_export
from studio.export.quantize import quantize
from studio.fileio import atomic_write_text, staged_file
from studio.merge import merge_run, merged_dir
from studio.train.runs import load_run_project

Progress = Callable[[str, float], None]
# The file the Modelfile points at: the smallest type that keeps a chat model's quality.
MODELFILE_PREFERENCE = ("q4_k_m", "q5_k_m", "q6_k", "q8_0", "q4_k_s", "q4_0", "f16", "bf16")


@dataclass
class ExportResult:
    files: dict[str, Path] = field(default_factory=dict)  # quant type -> GGUF path
    modelfile: Path | None = None
    failed: dict[str, str] = field(default_factory=dict)  # quant type -> why (export error or failed check)
    parity: dict[str, dict] = field(default_factory=dict)  # quant -> {passed, top1, mean_kl, ppl_ratio, ...}
    report_path: Path | None = None
    preflight: Preflight | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # step ("merge", "f16", "q8_0", "check"...) -> time
    handoff: list[str] = field(default_factory=list)  # one sentence per Ollama / LM Studio step, done or not
    evaluation: dict | None = None  # the check of the Modelfile's file against the base (studio.evaluate)


def export_run(run_dir: Path, quants: list[str] | None = None, progress: Progress | None = None,
               cancelled: Callable[[], bool] | None = None, out_dir: Path | None = None, ollama: bool = False,
               lmstudio: bool = False, overwrite: bool = False, check: bool = True) -> ExportResult:
    run_dir = Path(run_dir)
    project = load_run_project(run_dir)
    quants = list(dict.fromkeys(quants or project.export.quant))
    say = progress or (lambda message, fraction: None)
    out_dir = Path(out_dir or project.export.output_dir or run_dir / "export")

    say("Checking before export", 0.0)
    preflight = preflight_export(run_dir, quants, out_dir, overwrite)
    if not preflight.ok:
        raise ExportError("Export refused, nothing was written: " + " ".join(preflight.problems))
    result = ExportResult(preflight=preflight)
    targets = export_targets(project, quants, out_dir)

    model_dir = merged_dir(run_dir)
    if not (model_dir / "config.json").is_file():
        started = time.time()
        try:
            merge_run(run_dir, lambda m, f: say(m, 0.05 + 0.2 * f), cancelled)
        except Cancelled:
            raise Cancelled("Export cancelled while merging; nothing was written.") from None
        result.seconds["merge"] = time.time() - started
    write_ggufs(model_dir, quants, targets["gguf"], intermediate_path(project, out_dir, sixteen_bit_source(quants)),
                result, say, cancelled)

    if check and result.files:
        from studio.export.parity import check_files

        started = time.time()
        result.parity = check_files(run_dir, model_dir, result.files, lambda m, f: say(m, 0.75 + 0.2 * f),
                                    cancelled)
        result.seconds["check"] = time.time() - started
        for quant, verdict in result.parity.items():
            if not verdict["passed"]:
                result.failed[quant] = verdict["summary"]
    passed = [q for q in result.files if q not in result.failed]
    if passed:  # the Modelfile points at a file that passed its check, never at a flagged one
        chosen = next((q for q in MODELFILE_PREFERENCE if q in passed), passed[0])
        result.modelfile = targets["modelfile"]
        atomic_write_text(result.modelfile, render_modelfile(result.files[chosen].name, model_dir,
                                                             project.data.system_prompt))
        if project.evaluate.after_export:  # the file users will run: did the export keep what training taught?
            from studio.evaluate import evaluate_export

            result.evaluation = evaluate_export(run_dir, result.files[chosen],
                                                lambda m, f: say(f"Checking {chosen.upper()}: {m}", 0.95 + 0.05 * f),
                                                cancelled)
    if ollama or lmstudio:
        from studio.export.handoff import hand_off

        result.handoff = hand_off(result, project, ollama=ollama, lmstudio=lmstudio)
    result.report_path = targets["report"]
    write_report(result, run_dir)
    say("Export finished" if not result.failed else "Export finished with problems", 1.0)
    return result


def write_ggufs(model_dir: Path, quants: list[str], targets: dict[str, Path], intermediate: Path,
                result: ExportResult, say: Progress, cancelled) -> None:
    """The 16-bit file(s) from the converter, then each quantized type from the first of them."""
    source_type = sixteen_bit_source(quants)
    sixteens = [q for q in SIXTEEN_BIT if q in quants] or [source_type]
    others = [q for q in quants if q not in SIXTEEN_BIT]
    steps = len(sixteens) + len(others)
    source = targets.get(source_type, intermediate)
    try:
        for i, quant in enumerate(sixteens):
            target = targets.get(quant, intermediate)
            started = time.time()
            try:
                with staged_file(target) as tmp:
                    convert_to_gguf(model_dir, tmp, quant, lambda m, f, i=i: say(m, 0.25 + 0.5 * (i + f) / steps),
                                    cancelled)
            except ExportError as exc:
                if quant == source_type:  # every other file is made from this one
                    raise
                result.failed[quant] = str(exc)
                continue
            result.seconds[quant] = time.time() - started
            if quant in targets:
                result.files[quant] = target
        for i, quant in enumerate(others, start=len(sixteens)):
            say(f"Quantizing to {quant.upper()}", 0.25 + 0.5 * i / steps)
            started = time.time()
            try:
                with staged_file(targets[quant]) as tmp:
                    quantize(source, tmp, quant, cancelled)
                result.files[quant] = targets[quant]
                result.seconds[quant] = time.time() - started
            except Cancelled:
                raise
            except StudioError as exc:
                result.failed[quant] = str(exc)
    except Cancelled:
        kept = ", ".join(path.name for path in result.files.values())
        raise Cancelled("Export cancelled; unfinished files were removed" +
                        (f", finished ones kept: {kept}." if kept else ".")) from None
    finally:
        intermediate.unlink(missing_ok=True)  # made only as the quantizer's input


def write_report(result: ExportResult, run_dir: Path) -> None:
    import json

    report = {
        "run": str(run_dir),
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "files": {q: {"path": str(p), "bytes": p.stat().st_size} for q, p in result.files.items()},
        "estimated_bytes": result.preflight.sizes if result.preflight else {},
        "warnings": result.preflight.warnings if result.preflight else [],
        "failed": result.failed,
        "seconds": {k: round(v, 2) for k, v in result.seconds.items()},
        "parity": result.parity,
        "modelfile": str(result.modelfile) if result.modelfile else None,
        "handoff": result.handoff,
        "evaluation": result.evaluation,
    }
    atomic_write_text(result.report_path, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
