"""Export a run: preflight, merge if needed, convert to a 16-bit GGUF, quantize to each requested type, write
the Modelfile, check every file against the merged model, hand off to Ollama / LM Studio.

Nothing is written before the preflight passes. Each file appears under its final name only when complete; a
failure part-way keeps (and reports) the files finished before it; a cancel removes the unfinished ones.
One export at a time writes a run's merge and an output folder's files: a second is told so at once. The
merged model is always the merge of the run's present weights (studio.merge.merge_is_current).
"""
from __future__ import annotations

import re
import shutil
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from studio.errors import Cancelled, ExportError, StudioError
from studio.export.converter import convert_to_gguf
from studio.export.modelfile import render_modelfile
from studio.export.naming import SIXTEEN_BIT, export_folder, export_targets, intermediate_path, sixteen_bit_source
from studio.export.preflight import Preflight, estimated_size, parameter_count, preflight_export
from studio.export.quantize import quantize
from studio.fileio import (atomic_write_text, disk_full_message, exclusive, is_disk_full, staged_file,
                           sweep_partials)
from studio.merge import merge_is_current, merge_run, merged_dir
from studio.progress import Progress
from studio.train.runs import load_run_project
from studio.vocabulary import MODELFILE_PREFERENCE



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
    run_dir: Path | None = None  # the run exported (an export folder may be shared by several runs)
    problems: list[str] = field(default_factory=list)  # what could not be written (the Modelfile, the report)
    merged_again: bool = False  # the run's merge was missing or stale, and was made from its present weights
    evaluation: dict | None = None  # the check of the Modelfile's file against the base (studio.evaluate)


def export_run(run_dir: Path, quants: list[str] | None = None, progress: Progress | None = None,
               cancelled: Callable[[], bool] | None = None, out_dir: Path | None = None, ollama: bool = False,
               lmstudio: bool = False, overwrite: bool = False, check: bool = True) -> ExportResult:
    run_dir = Path(run_dir).resolve()
    project = load_run_project(run_dir)
    quants = list(dict.fromkeys(quants or project.export.quant))
    say = progress or (lambda message, fraction: None)
    out_dir = export_folder(run_dir, project, out_dir)

    with ExitStack() as held:
        held.enter_context(exclusive(run_dir, "export", f"The run {run_dir.name} is already being exported (in "
                                     "another window or command); wait for that export to finish."))
        held.enter_context(exclusive(out_dir, "write", f"Another export is writing into {out_dir} right now; wait "
                                     "for it to finish, or choose another output folder."))
        say("Checking before export", 0.0)
        preflight = preflight_export(run_dir, quants, out_dir, overwrite)
        if not preflight.ok:
            raise ExportError("Export refused, nothing was written: " + " ".join(preflight.problems))
        result = ExportResult(preflight=preflight, run_dir=run_dir)
        targets = export_targets(project, quants, out_dir)
        intermediate = intermediate_path(project, out_dir, sixteen_bit_source(quants))
        for path in [*targets["gguf"].values(), targets["modelfile"], targets["report"], intermediate,
                     merged_dir(run_dir)]:
            sweep_partials(path)  # left by an export or merge that was killed (we hold the locks: none is live)

        model_dir = merged_dir(run_dir)
        if not merge_is_current(run_dir):
            started = time.time()
            try:
                merge_run(run_dir, lambda m, f: say(m, 0.05 + 0.2 * f), cancelled)
            except Cancelled:
                raise Cancelled("Export cancelled while merging; nothing was written.") from None
            result.seconds["merge"] = time.time() - started
            result.merged_again = True
        write_ggufs(model_dir, quants, targets["gguf"], intermediate, result, say, cancelled)

        if check and result.files:
            from studio.export.parity import check_files

            started = time.time()  # the check takes most of an export's time on a CPU: it gets most of the bar
            result.parity = check_files(run_dir, model_dir, result.files, lambda m, f: say(m, 0.6 + 0.35 * f),
                                        cancelled)
            result.seconds["check"] = time.time() - started
            for quant, verdict in result.parity.items():
                if not verdict["passed"]:
                    result.failed[quant] = verdict["summary"]
        passed = [q for q in result.files if q not in result.failed]
        if passed:  # the Modelfile points at a file that passed its check, never at a flagged one
            chosen = next((q for q in MODELFILE_PREFERENCE if q in passed), passed[0])
            text = render_modelfile(result.files[chosen].name, model_dir, project.data.system_prompt)
            if write_small_file(targets["modelfile"], text, "the Ollama Modelfile", result):
                result.modelfile = targets["modelfile"]
            if project.evaluate.after_export:  # the file users will run: did it keep what training taught?
                from studio.evaluate import evaluate_export

                result.evaluation = evaluate_export(run_dir, result.files[chosen], lambda m, f: say(
                    f"Checking {chosen.upper()}: {m}", 0.95 + 0.05 * f), cancelled)
        if ollama or lmstudio:
            from studio.export.handoff import hand_off

            result.handoff = hand_off(result, project, ollama=ollama, lmstudio=lmstudio)
        write_report(result, run_dir, targets["report"])
        say("Export finished" if not (result.failed or result.problems) else "Export finished with problems", 1.0)
        return result


def write_small_file(path: Path, text: str, what: str, result: ExportResult) -> bool:
    """Write the Modelfile or the report; a full disk becomes a sentence in result.problems, not a traceback
    that would lose the rest of the result."""
    try:
        atomic_write_text(path, text)
        return True
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        result.problems.append(disk_full_message(path.parent, f"{what} ({path.name})"))
        return False


class DiskFull(ExportError):
    """The output folder's disk filled up: the files after this one would fail the same way."""


# What a full disk looks like in the converter's and quantizer's own words; below FULL_BYTES free, any write
# failure is taken for a full disk (the quantizer says only "basic_ios::clear: iostream error").
DISK_FULL_TEXT = re.compile(r"No space left|requested and \d+ written|Disk quota exceeded")
FULL_BYTES = 64 * 1024**2


def written_or_disk_full(write: Callable[[], None], folder: Path, name: str, need_bytes: int) -> None:
    """Run one file's writer; a failure on a full disk becomes DiskFull with the one sentence for it. Checked
    while the unfinished file still takes its space (the staging name removes it only afterwards)."""
    try:
        write()
    except OSError as exc:
        if is_disk_full(exc):
            raise DiskFull(disk_full_message(folder, name, need_bytes)) from None
        raise
    except ExportError as exc:
        if DISK_FULL_TEXT.search(str(exc)) or shutil.disk_usage(folder).free < FULL_BYTES:
            raise DiskFull(disk_full_message(folder, name, need_bytes)) from None
        raise


def write_ggufs(model_dir: Path, quants: list[str], targets: dict[str, Path], intermediate: Path,
                result: ExportResult, say: Progress, cancelled) -> None:
    """The 16-bit file(s) from the converter, then each quantized type from the first of them. A full disk
    stops the rest (each would fail the same way); the files finished before it are kept and reported."""
    source_type = sixteen_bit_source(quants)
    sixteens = [q for q in SIXTEEN_BIT if q in quants] or [source_type]
    others = [q for q in quants if q not in SIXTEEN_BIT]
    steps = len(sixteens) + len(others)
    source = targets.get(source_type, intermediate)
    disk_full = False
    sizes = result.preflight.sizes if result.preflight else {}
    parameters = parameter_count(model_dir)

    def need_from(quant: str) -> int:  # this file and every one after it
        order = sixteens + others
        return sum(sizes.get(q) or estimated_size(parameters, q) for q in order[order.index(quant):])

    def convert(quant: str, tmp: Path, i: int) -> None:
        convert_to_gguf(model_dir, tmp, quant, lambda m, f: say(m, 0.25 + 0.35 * (i + f) / steps), cancelled,
                        label=targets.get(quant, intermediate).name)

    try:
        for i, quant in enumerate(sixteens):
            target = targets.get(quant, intermediate)
            started = time.time()
            try:
                with staged_file(target) as tmp:
                    written_or_disk_full(lambda: convert(quant, tmp, i), target.parent, target.name,
                                         need_from(quant))
            except ExportError as exc:
                if quant == source_type:  # every other file is made from this one
                    raise
                result.failed[quant] = str(exc)
                disk_full = isinstance(exc, DiskFull)
                if disk_full:
                    break
                continue
            result.seconds[quant] = time.time() - started
            if quant in targets:
                result.files[quant] = target
        for i, quant in enumerate(others, start=len(sixteens)):
            if disk_full:
                result.failed[quant] = "Not written: the disk filled up before it (see above)."
                continue
            say(f"Quantizing to {quant.upper()}", 0.25 + 0.35 * i / steps)
            started = time.time()
            try:
                with staged_file(targets[quant]) as tmp:
                    written_or_disk_full(lambda: quantize(source, tmp, quant, cancelled), targets[quant].parent,
                                         targets[quant].name, need_from(quant))
                result.files[quant] = targets[quant]
                result.seconds[quant] = time.time() - started
            except Cancelled:
                raise
            except StudioError as exc:
                result.failed[quant] = str(exc)
                disk_full = isinstance(exc, DiskFull)
    except Cancelled:
        kept = ", ".join(path.name for path in result.files.values())
        raise Cancelled("Export cancelled; unfinished files were removed" +
                        (f", finished ones kept: {kept}." if kept else ".")) from None
    finally:
        intermediate.unlink(missing_ok=True)  # made only as the quantizer's input


def write_report(result: ExportResult, run_dir: Path, path: Path) -> None:
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
        "problems": result.problems,
        "merged_again": result.merged_again,
        "evaluation": result.evaluation,
    }
    if write_small_file(path, json.dumps(report, indent=2, ensure_ascii=False) + "\n", "the export report", result):
        result.report_path = path


def read_report(out_dir: Path) -> ExportResult | None:
    """The last export into `out_dir`, read back from the report.json write_report left there (None when there
    is none, or its files are gone), so reopening the app shows what is already on disk."""
    import json

    report_path = Path(out_dir) / "report.json"
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    files = {quant: Path(info["path"]) for quant, info in report.get("files", {}).items()
             if Path(info["path"]).is_file()}
    if not files:
        return None
    modelfile = report.get("modelfile")
    return ExportResult(files=files, modelfile=Path(modelfile) if modelfile else None,
                        failed=report.get("failed") or {}, parity=report.get("parity") or {},
                        report_path=report_path, handoff=report.get("handoff") or [],
                        run_dir=Path(report["run"]) if report.get("run") else None,
                        problems=report.get("problems") or [], merged_again=bool(report.get("merged_again")),
                        evaluation=report.get("evaluation"))


def last_export(run_dir: Path, project=None) -> ExportResult | None:
    """This run's last export, read from the report in its export folder (export_folder); None when there is
    none, its files are gone, or the folder's last export was another run's."""
    result = read_report(export_folder(run_dir, project))
    if result is None or (result.run_dir is not None and result.run_dir.resolve() != Path(run_dir).resolve()):
        return None
    return result
