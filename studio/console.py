"""What the command line prints: a progress bar, training events as they come, an export's files and checks."""
from __future__ import annotations

import sys

from studio import units


class Bar:
    """A one-line terminal progress bar that stays quiet when output is not a terminal."""

    def __init__(self, label: str):
        self.label, self.last = label, -1.0
        self.tty = sys.stderr.isatty()

    def __call__(self, message: str, fraction: float) -> None:
        fraction = min(1.0, max(0.0, fraction or 0.0))
        if self.tty:
            filled = int(fraction * 30)
            sys.stderr.write(f"\r{self.label}: [{'#' * filled}{'.' * (30 - filled)}] {fraction:4.0%} {message[:50]:<50}")
            if fraction >= 1.0:
                sys.stderr.write("\n")
        elif fraction - self.last >= 0.25 or fraction >= 1.0:  # a line per quarter since the last line written
            sys.stderr.write(f"{self.label}: {fraction:.0%} {message}\n")
        else:
            return
        self.last = fraction
        sys.stderr.flush()


def print_training_event(event: dict, bar: Bar) -> None:
    kind = event["type"]
    if kind == "progress":
        eta = event.get("eta_s")
        tps = event.get("tokens_per_s")
        detail = f"step {event['step']}/{event['total_steps']}" + (f", {tps:.0f} tok/s" if tps else "") + \
                 (f", {eta:.0f}s left" if eta is not None else "")
        bar(detail, event.get("fraction", 0.0))
    elif kind == "metrics":
        bar(f"step {event['step']} loss {event['loss']:.4f}", bar.last)
    elif kind == "eval":
        sys.stderr.write(f"\n  eval loss at step {event['step']}: {event['eval_loss']:.4f}\n")
    elif kind == "log" and not event.get("raw"):
        sys.stderr.write(f"\n  {event['message']}\n" if bar.tty else f"  {event['message']}\n")
    elif kind == "error":
        sys.stderr.write(f"\nError: {event['message']}\n")


def print_export_result(result) -> None:
    for quant, path in result.files.items():
        flag = "CHECK FAILED" if quant in result.failed else "ok"
        print(f"  {quant.upper():>7}: {path} ({units.file_size(path.stat().st_size)}) {flag}")
    for quant, why in result.failed.items():
        if quant not in result.files:
            print(f"  {quant.upper():>7}: FAILED - {why}")
    if result.parity:
        print(f"\n  {'type':>7}  {'tokens':>6}  {'top-1':>6}  {'mean KL':>8}  {'ppl':>7}  verdict")
        for quant, check in result.parity.items():
            print(f"  {quant.upper():>7}  {'same' if check['tokenization_ok'] else 'DIFFER':>6}  {check['top1']:6.1%}  "
                  f"{check['mean_kl']:8.4f}  {check['ppl_ratio'] - 1:+7.2%}  "
                  f"{'passed' if check['passed'] else 'FAILED'} ({check['rule']})"
                  + ("" if check.get("meets_target") is None else
                     f"; quality target {check['target']}: {'met' if check['meets_target'] else 'missed'}"))
    if result.preflight:
        for warning in result.preflight.warnings:
            print(f"  Note: {warning}")
    for line in result.handoff:
        print(f"  {line}")
    for problem in result.problems:
        print(f"  Problem: {problem}")
    if result.modelfile:
        print(f"  Ollama Modelfile: {result.modelfile}")
    if result.evaluation:
        print(f"  Check: {result.evaluation['summary']}")
    if result.report_path:
        print(f"  Report: {result.report_path}")


def print_export_plan(preflight) -> None:
    """What will be written and how big, before anything is."""
    sys.stderr.write(f"Model: {preflight.architecture}, tokenizer {preflight.tokenizer}\n")
    for quant, size in preflight.sizes.items():
        sys.stderr.write(f"  {quant.upper():>7}: about {units.file_size(size)}\n")
    sys.stderr.write(f"  Disk: needs about {units.file_size(preflight.needed_bytes)}, {units.file_size(preflight.free_bytes)} free\n")
