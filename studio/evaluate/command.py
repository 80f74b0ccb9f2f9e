"""`ftstudio eval RUN_DIR [--gguf FILE] [--thorough] [--json]` and `ftstudio runs PROJECT [--json]`.

Exit codes: 0 checked (whatever the verdict), 2 bad input (not a run, no trained weights, no such file),
130 cancelled.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from studio.errors import Cancelled, StudioError

OK, BAD_INPUT, CANCELLED = 0, 2, 130


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help="check a run: did it learn your task, did it keep what it knew")
    p.add_argument("run_dir", help="a run folder (runs/<project>/<timestamp>)")
    p.add_argument("--gguf", help="check this exported GGUF in llama.cpp instead of the trained weights")
    p.add_argument("--thorough", action="store_true",
                   help="ask every general question and read all the prose (about twice as long as the quick check "
                        "the project's [evaluate] check sets by default)")
    p.add_argument("--json", action="store_true", help="print the whole report as JSON")
    p.set_defaults(func=eval_command)
    p = subparsers.add_parser("runs", help="list a project's runs side by side with their checks")
    p.add_argument("project", help="a *.ftproj.toml")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.set_defaults(func=runs_command)


def eval_command(args) -> int:
    from studio.console import Bar
    from studio.evaluate import evaluate_run
    from studio.evaluate.report import format_report, report_path

    run_dir = Path(args.run_dir)
    try:
        report = evaluate_run(run_dir, Path(args.gguf) if args.gguf else None, Bar("Checking"),
                              check="thorough" if args.thorough else None)
    except Cancelled as exc:
        print(exc, file=sys.stderr)
        return CANCELLED
    except StudioError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return BAD_INPUT
    if args.json:
        print(json.dumps(report, indent=1, ensure_ascii=False))
    else:
        print(format_report(report))
        print(f"\nReport: {report_path(run_dir, Path(args.gguf) if args.gguf else None)}")
    return OK


def runs_command(args) -> int:
    from studio.evaluate.compare import COLUMNS, cell, runs_table
    from studio.project import load_project

    try:
        rows = runs_table(load_project(args.project))
    except StudioError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return BAD_INPUT
    if args.json:
        print(json.dumps(rows, indent=1, ensure_ascii=False))
        return OK
    if not rows:
        print("This project has no runs yet: train one with `ftstudio train`.")
        return OK
    table = [[label for _, label in COLUMNS]] + [[cell(r, key) for key, _ in COLUMNS] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    for line in table:
        print("  ".join(value.ljust(width) for value, width in zip(line, widths)).rstrip())
    if any(r["kept"] is None for r in rows):
        print("\nA run without a check shows —: check it with `ftstudio eval RUN_DIR`.")
    return OK
