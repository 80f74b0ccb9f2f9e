"""Checking a run: load what it trained (or take it from the training worker's memory, or an exported GGUF),
measure it and the base model on the same held-out prompts and general questions, judge, write the report.

Three ways in, one measurement underneath (`measure`):
- `evaluate_in_worker`: right after training, in the worker process, on the model still in memory (a LoRA's
  base is the same weights with the adapter switched off, so the base is never loaded twice);
- `evaluate_run`: on demand (`ftstudio eval RUN_DIR`, the app's Check button): the adapter on its base, a
  fully fine-tuned model beside its base, or the merged model; with `gguf=` an exported file in llama.cpp,
  against the base numbers already in the run's report when they were measured on the same examples;
- `evaluate_export`: after export, on the file the Modelfile points at, never failing the export.
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from studio.errors import Cancelled, StudioError
from studio.evaluate import general, task
from studio.evaluate.engine import Reply
from studio.evaluate.report import read_report, report_path, summary_line, write_report
from studio.evaluate.verdict import verdict

Progress = Callable[[str, float], None]
# Share of one side's time each part takes (measured on the embedded model), for an even progress bar.
WEIGHTS = {"answers": 0.2, "loss": 0.05, "questions": 0.6, "prose": 0.15}


class EvaluationError(StudioError):
    """A run cannot be checked (no trained weights, unreadable files)."""


def measure_task(engine, inputs: task.TaskInputs, say: Callable[[str, float], None], cancelled=None) -> dict:
    """One model on the held-out split: its answers and the loss of your answers."""
    replies = engine.generate(inputs.prompts, inputs.answer_tokens, cancelled,
                              lambda f: say("answering your held-out prompts", WEIGHTS["answers"] * f)) \
        if inputs.prompts else []
    loss_sum, loss_n = engine.nll(inputs.loss_rows, cancelled,
                                  lambda f: say("scoring your answers", WEIGHTS["answers"] + WEIGHTS["loss"] * f)) \
        if inputs.loss_rows else (0.0, 0)
    return {"replies": replies, "loss": loss_sum / loss_n if loss_n else None}


def measure_general(engine, check: str, check_prompts, prose_rows, say: Callable[[str, float], None],
                    cancelled=None) -> dict:
    """One model on the general check: its answers to the questions and its prose perplexity."""
    start = WEIGHTS["answers"] + WEIGHTS["loss"]
    checks = engine.generate(check_prompts, general.ANSWER_TOKENS, cancelled,
                             lambda f: say("answering the general questions", start + WEIGHTS["questions"] * f))
    start += WEIGHTS["questions"]
    prose_sum, prose_n = engine.nll(prose_rows, cancelled,
                                    lambda f: say("reading everyday prose", start + WEIGHTS["prose"] * f))
    side = general.summarize(checks, check)
    side["prose_perplexity"] = math.exp(prose_sum / max(1, prose_n))
    return side


def held_out(project, tokenizer) -> task.TaskInputs:
    """The run's held-out split as token ids; an empty one with a plain note when the data cannot give one."""
    from studio.data.prepare import read_split

    empty = lambda note: task.TaskInputs("", [], [], [], task.ANSWER_TOKENS_MIN, note)  # noqa: E731
    try:
        _, rows, _, source = read_split(project)
    except StudioError as exc:
        return empty(f"The held-out examples could not be read, so the task was not checked: {exc}")
    if not rows:
        return empty("This run holds no examples out (eval fraction 0 and no eval file), so whether it learned "
                     "your task cannot be measured. Set an eval fraction on the Data page (0.1 is usual).")
    return task.prepare(project, tokenizer, rows, source.where)


def build_report(project, run_dir: Path, subject: dict, inputs, base: dict, tuned: dict, seconds: dict,
                 device: str, base_source: dict, check: str, prose_tokens: int) -> dict:
    task_section = task.compare(inputs, base["task"], tuned["task"]) if inputs.loss_rows else None
    general_section = general.compare(base["general"], tuned["general"], check, prose_tokens)
    m, t = project.method, project.train
    return {"run": str(run_dir), "subject": subject, "check": check,
            "base": {"model": project.model.name, **base_source},
            "device": device, "seconds": {k: round(v, 1) for k, v in seconds.items()},
            "settings": {"method": m.method, "rank": m.rank, "alpha": m.alpha, "learning_rate": t.learning_rate,
                         "max_steps": t.max_steps, "epochs": t.epochs, "batch_size": t.batch_size,
                         "max_seq_len": t.max_seq_len},
            "task": task_section, "task_note": inputs.note, "general": general_section,
            "verdict": verdict(project, task_section, general_section, None, inputs.note)}


def check_of(project, check: str | None) -> str:
    """The check to run: the one asked for, else the project's ([evaluate] check)."""
    return check or project.evaluate.check


def compare_sides(project, run_dir, subject, tokenizer, tuned_engine, base_side, progress: Progress | None,
                  cancelled, device: str, check: str, base_identity: dict | None = None) -> dict:
    """Measure base then tuned. base_side: a cached side (a dict), or a context manager giving the base engine;
    with `base_identity` the base's parts are read from the base cache when it holds them (studio.evaluate.
    basecache) and kept there when measured now."""
    from studio.evaluate import basecache

    say = progress or (lambda message, fraction: None)
    inputs = held_out(project, tokenizer)
    check_prompts = general.prompts(tokenizer, project.data.system_prompt, check)
    prose_rows = general.prose_rows(tokenizer, check)
    started = time.time()
    if isinstance(base_side, dict):
        base, base_source = base_side, {"source": f"cached from {report_path(run_dir).name}"}
    else:
        keys = {}
        if base_identity is not None:
            keys = {"task": basecache.key(base_identity, "task", {"prompts": inputs.prompts, "loss": inputs.loss_rows,
                                                                   "answer_tokens": inputs.answer_tokens}),
                    "general": basecache.key(base_identity, "general", {
                        "check": general.version(check), "prompts": check_prompts, "prose": prose_rows,
                        "answer_tokens": general.ANSWER_TOKENS})}
        base = {part: basecache.load(part, digest) for part, digest in keys.items()}
        cached = sorted(part for part, side in base.items() if side is not None)
        if len(cached) < 2:
            with base_side() as base_engine:
                base_say = lambda m, f: say(f"Base model: {m}", 0.5 * f)
                if base.get("task") is None:
                    base["task"] = measure_task(base_engine, inputs, base_say, cancelled)
                if base.get("general") is None:
                    base["general"] = measure_general(base_engine, check, check_prompts, prose_rows, base_say,
                                                      cancelled)
            for part, digest in keys.items():
                if part not in cached:
                    basecache.store(part, digest, base[part], run_dir)
        base_source = {"source": "transformers", "cached": cached}
    base_seconds = time.time() - started
    tuned_say = lambda m, f: say(f"Fine-tuned: {m}", 0.5 + 0.5 * f)
    tuned = {"task": measure_task(tuned_engine, inputs, tuned_say, cancelled),
             "general": measure_general(tuned_engine, check, check_prompts, prose_rows, tuned_say, cancelled)}
    seconds = {"total": time.time() - started, "base": base_seconds, "tuned": time.time() - started - base_seconds}
    return build_report(project, run_dir, subject, inputs, base, tuned, seconds, device, base_source, check,
                        sum(len(ids) for ids, _ in prose_rows))


# --- the trained weights in transformers -------------------------------------------------------------------

def _device_and_dtype():
    import torch

    return ("cuda", torch.bfloat16) if torch.cuda.is_available() else ("cpu", torch.float32)


def _tokenizer(folder: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _weights(run_dir: Path) -> tuple[str, Path]:
    from studio.merge import merged_dir
    from studio.train.runs import trained_weights_dir

    weights = trained_weights_dir(run_dir)
    if weights is not None:
        return ("adapter" if weights.name == "adapter" else "model"), weights
    if (merged_dir(run_dir) / "config.json").is_file():
        return "merged", merged_dir(run_dir)
    raise EvaluationError(f"The run {Path(run_dir).name} has no trained weights to check (no adapter/ or model/ "
                          "folder). Train it to the end, or press Stop and save, then check it again.")


LABELS = {"adapter": "the trained LoRA adapter", "model": "the fully fine-tuned model", "merged": "the merged model"}


@contextmanager
def _separate_base(base_dir: Path, device: str, dtype):
    """The base model loaded beside a fully fine-tuned one, freed after use."""
    from transformers import AutoModelForCausalLM

    from studio.evaluate.engine import HfEngine

    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=dtype).to(device)
    try:
        yield HfEngine(model, _tokenizer(base_dir))
    finally:
        del model
        _free(device)


def _free(device: str) -> None:
    import gc

    gc.collect()
    if device == "cuda":
        import torch
        torch.cuda.empty_cache()


def _base_side(model, tokenizer, base_dir: Path, device: str, dtype):
    """The base as a context manager: the same model with its adapter off, or the base loaded separately."""
    from studio.evaluate.engine import HfEngine

    if hasattr(model, "disable_adapter"):
        @contextmanager
        def adapter_off():
            with model.disable_adapter():
                yield HfEngine(model, tokenizer)
        return adapter_off
    return lambda: _separate_base(base_dir, device, dtype)


def evaluate_run(run_dir: Path, gguf: Path | None = None, progress: Progress | None = None,
                 cancelled=None, check: str | None = None) -> dict:
    """Check a run (its trained weights, or with `gguf` an exported file) and write its report; returns it.
    `check` is "quick" or "thorough" (studio.evaluate.general); None takes the run's [evaluate] check."""
    from studio.models import resolve_model
    from studio.train.runs import load_run_project

    run_dir = Path(run_dir)
    project = load_run_project(run_dir)
    if gguf is not None:
        return _evaluate_gguf(run_dir, project, Path(gguf), progress, cancelled, check_of(project, check))
    kind, weights = _weights(run_dir)
    say = progress or (lambda message, fraction: None)
    say("Loading the models", 0.0)
    from transformers import AutoModelForCausalLM

    device, dtype = _device_and_dtype()
    base_dir = resolve_model(project.model.name)
    tokenizer = _tokenizer(weights)
    if kind == "adapter":
        from peft import PeftModel

        base = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=dtype).to(device)
        model = PeftModel.from_pretrained(base, str(weights))
    else:
        model = AutoModelForCausalLM.from_pretrained(str(weights), dtype=dtype).to(device)
    try:
        return _finish(run_dir, project, kind, weights, model, tokenizer, base_dir, device, dtype, progress, cancelled,
                       check_of(project, check))
    finally:
        del model
        _free(device)


def _quantized(model) -> str:
    """How the base weights are held when a LoRA trained on a 4-bit base (QLoRA): its base is that 4-bit model."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "4bit" if getattr(base, "is_loaded_in_4bit", False) else "8bit" if getattr(base, "is_loaded_in_8bit", False) \
        else ""


def _finish(run_dir, project, kind, weights, model, tokenizer, base_dir, device, dtype, progress, cancelled,
            check: str) -> dict:
    from studio.evaluate import basecache
    from studio.evaluate.engine import HfEngine

    subject = {"kind": kind, "path": str(weights), "label": LABELS[kind]}
    base_side = _base_side(model, tokenizer, base_dir, device, dtype)
    quantized = _quantized(model) if hasattr(model, "disable_adapter") else ""
    report = compare_sides(project, run_dir, subject, tokenizer, HfEngine(model, tokenizer), base_side, progress,
                           cancelled, device, check, basecache.identity(base_dir, device, dtype, quantized))
    report = write_report(report, report_path(run_dir))
    if progress:
        progress("Checked", 1.0)
    return report


def evaluate_in_worker(run_dir: Path, model, tokenizer, events, stop=None) -> dict | None:
    """After training, in the worker: check the model in memory, report progress as `log` events (each with an
    `evaluation` field), stop when the worker is asked to (`stop` is truthy: the STOP file, a signal, the reader
    gone; without it the STOP file alone). Never raises: a failed check must not turn a finished training run
    into a failed one."""
    import torch

    from studio.models import resolve_model
    from studio.train.runs import STOP_FILE, load_run_project

    stop_file = Path(run_dir) / STOP_FILE
    last = [-1.0]

    def progress(message: str, fraction: float) -> None:
        if fraction - last[0] >= 0.1 or fraction >= 1.0:
            last[0] = fraction
            events.emit("log", message=f"Checking what the run learned and kept: {fraction:.0%} ({message})",
                        evaluation={"fraction": round(fraction, 3), "message": message})

    try:
        project = load_run_project(run_dir)
        kind, weights = _weights(run_dir)
        device = next(model.parameters()).device.type
        dtype = next(p for p in model.parameters() if p.is_floating_point()).dtype
        report = _finish(run_dir, project, kind, weights, model, tokenizer, resolve_model(project.model.name),
                         device, dtype if dtype in (torch.float32, torch.bfloat16, torch.float16) else torch.float32,
                         progress, (lambda: bool(stop)) if stop is not None else stop_file.exists,
                         project.evaluate.check)
    except Cancelled:
        stop_file.unlink(missing_ok=True)
        events.emit("log", message="The check after training was stopped; nothing was written. "
                                   "Check the run later from the Results page or with `ftstudio eval`.",
                    evaluation={"cancelled": True})
        return None
    except Exception as exc:  # noqa: BLE001 - the training result stands whatever the check does
        events.emit("log", message=f"The check after training failed ({exc}); the trained weights are saved. "
                                   "Try `ftstudio eval` on the run folder.", evaluation={"failed": str(exc)})
        return None
    events.emit("log", message=f"Check: {summary_line(report)}",
                evaluation={"report": str(report_path(run_dir)), "headline": report["verdict"]["headline"],
                            "tone": report["verdict"]["tone"]})
    return report


# --- an exported GGUF in llama.cpp ------------------------------------------------------------------------

def cached_base(run_dir: Path, inputs: task.TaskInputs, check: str) -> dict | None:
    """The base model's side from the run's report, when it was measured on exactly these prompts and this
    check set; None otherwise (then the base is measured again)."""
    report = read_report(report_path(run_dir))
    if not report or report["general"]["version"] != general.version(check):
        return None
    rows = report["task"]["rows"] if report.get("task") else []
    if [(r["prompt"], r["reference"]) for r in rows] != [(r["prompt"], r["reference"]) for r in inputs.rows]:
        return None
    if report.get("task") and report["task"]["answer_tokens"] != inputs.answer_tokens:
        return None
    g = report["general"]
    side = {k: g["base"][k] for k in ("accuracy", "correct", "stopped", "categories", "prose_perplexity")}
    side.update(replies=[r["base"] for r in g["rows"]], right=[r["base_right"] for r in g["rows"]])
    loss = report["task"]["base"]["answer_loss"] if report.get("task") else None
    return {"task": {"replies": [Reply(r["base"], True) for r in rows], "loss": loss}, "general": side}


def _evaluate_gguf(run_dir: Path, project, gguf: Path, progress, cancelled, check: str) -> dict:
    from studio.evaluate import basecache
    from studio.evaluate.engine import GgufEngine
    from studio.models import resolve_model

    if not gguf.is_file():
        raise EvaluationError(f"The GGUF file {gguf} does not exist. Export the run first (`ftstudio export`), "
                              "or name an existing .gguf file.")
    base_dir = resolve_model(project.model.name)
    kind_weights = None
    try:
        kind_weights = _weights(run_dir)
    except EvaluationError:
        pass
    tokenizer = _tokenizer(kind_weights[1] if kind_weights else base_dir)
    inputs = held_out(project, tokenizer)
    base = cached_base(run_dir, inputs, check)
    n_ctx = max([len(p) for p in inputs.prompts + general.prompts(tokenizer, project.data.system_prompt, check)] +
                [general.PROSE_WINDOW] +
                [len(r[0]) for r in inputs.loss_rows]) + max(inputs.answer_tokens, general.ANSWER_TOKENS) + 8
    engine = GgufEngine(gguf, tokenizer, n_ctx)
    device, dtype = _device_and_dtype()
    try:
        base_side = base if base is not None else (lambda: _separate_base(base_dir, device, dtype))
        subject = {"kind": "gguf", "path": str(gguf), "label": f"the exported file {gguf.name} in llama.cpp"}
        report = compare_sides(project, run_dir, subject, tokenizer, engine, base_side, progress, cancelled,
                               "cpu" if base is not None else device, check,
                               basecache.identity(base_dir, device, dtype))
    finally:
        engine.close()
    trained = read_report(report_path(run_dir))
    if trained and trained.get("subject", {}).get("kind") != "gguf":
        report["trained"] = {"task_score": trained["task"]["tuned"]["score"] if trained.get("task") else None,
                             "answer_loss": trained["task"]["tuned"]["answer_loss"] if trained.get("task") else None,
                             "accuracy": trained["general"]["tuned"]["accuracy"],
                             "prose_perplexity": trained["general"]["tuned"]["prose_perplexity"]}
    report = write_report(report, report_path(run_dir, gguf))
    if progress:
        progress("Checked", 1.0)
    return report


def evaluate_export(run_dir: Path, gguf: Path, progress: Progress | None = None, cancelled=None) -> dict:
    """After export: check the file users will run. Returns {"summary", "report"} or {"summary"} saying why it
    was not checked; never raises, so a finished export is never reported as failed because of its check."""
    try:
        report = evaluate_run(run_dir, gguf, progress, cancelled)
    except Cancelled:
        return {"summary": f"The check of {Path(gguf).name} was cancelled; nothing was written."}
    except Exception as exc:  # noqa: BLE001 - the exported files stand whatever the check does
        return {"summary": f"{Path(gguf).name} could not be checked: {exc}"}
    return {"summary": f"{Path(gguf).name}: {summary_line(report)}", "report": str(report_path(run_dir, gguf))}
