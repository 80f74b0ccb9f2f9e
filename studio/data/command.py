"""`ftstudio data inspect FILE`: what the studio finds in a dataset, for people and for other tools.

Exit code 0 when the file has at least one usable row, 2 when it is unreadable, empty or has none.
"""
from __future__ import annotations

import argparse
import json
import sys

from studio.errors import Cancelled, StudioError
from studio.vocabulary import ROW_FORMATS

USABLE, UNUSABLE = 0, 2


def register(subparsers) -> None:
    data = subparsers.add_parser("data", help="inspect dataset files")
    actions = data.add_subparsers(dest="data_command", required=True)
    inspect = actions.add_parser("inspect", help="detect the format, count usable rows, list every problem")
    inspect.add_argument("file", help="a .jsonl/.json/.csv/.tsv/.parquet/.txt file, a spreadsheet (.xlsx/.ods/.xls), "
                         "a document (.md/.docx/.pdf) or folder of documents, a dataset folder or Hub id")
    inspect.add_argument("--sheet", default="", help="the workbook sheet to read (default: the first with data)")
    inspect.add_argument("--model", help="also count tokens with this model's tokenizer and chat template")
    inspect.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    inspect.add_argument("--format", default="auto", help=f"one of: {', '.join(ROW_FORMATS)} (default: detect)")
    inspect.add_argument("--column", action="append", default=[], metavar="FIELD=COLUMN",
                         help="map a format field to a column, e.g. --column prompt=question")
    inspect.add_argument("--max-seq-len", type=int, default=1024, help="the sequence-length cutoff (tokens)")
    inspect.add_argument("--train-on", choices=("assistant", "all"), default="assistant")
    inspect.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from studio.data.inspect import inspect_file

    try:
        columns = dict(_pair(c) for c in args.column)
        report = inspect_file(args.file, args.format, columns, progress=_progress(args), sheet=args.sheet)
        stats = _token_stats(args, report) if args.model and report.usable else None
    except Cancelled as exc:
        print(exc, file=sys.stderr)
        return 130
    except StudioError as exc:
        if args.json:
            print(json.dumps({"file": args.file, "format": None, "rows": 0, "usable_rows": 0, "usable": False,
                              "error": str(exc), "problems": [{"row": None, "message": str(exc)}]}))
        else:
            print(str(exc), file=sys.stderr)
        return UNUSABLE
    if args.json:
        out = report.to_dict()
        out["tokens"] = stats.to_dict() if stats else None
        print(json.dumps(out, ensure_ascii=False))
    else:
        _print_text(report, stats)
    return USABLE if report.usable else UNUSABLE


def _pair(text: str) -> tuple[str, str]:
    from studio.errors import DataError

    if "=" not in text:
        raise DataError(f"--column {text!r} must look like FIELD=COLUMN, e.g. prompt=question.")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def _progress(args):
    if args.json or not sys.stderr.isatty():
        return None
    return lambda message, fraction: print(f"\r{message}: {fraction:4.0%}", end="", file=sys.stderr, flush=True)


def _token_stats(args, report):
    from studio.data.findings import count_tokens, load_tokenizer
    from studio.models import resolve_model

    return count_tokens(args.file, report, load_tokenizer(resolve_model(args.model)), args.max_seq_len,
                        args.train_on, progress=_progress(args))


def _print_text(report, stats) -> None:
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(f"{report.path}: {report.format} format ({'; '.join(report.evidence)})")
    if len(report.sheets) > 1:
        print(f"Sheets with data: {', '.join(report.sheets)} (choose one with --sheet)")
    print(f"{report.rows_word.capitalize()}: {report.rows}   usable: {report.usable_rows}   with problems: "
          f"{report.problem_count}   duplicates: {report.duplicates}   read in {report.seconds:.1f} s")
    for problem in report.problems:
        print(f"  {problem.message}")
    if report.problem_count > len(report.problems):
        print(f"  ... and {report.problem_count - len(report.problems)} more problems.")
    for warning in report.warnings:
        print(f"  Note: {warning.message}")
    if report.warning_count > len(report.warnings):
        print(f"  ... and {report.warning_count - len(report.warnings)} more rows with chat-control text.")
    if stats:
        print(f"Tokens: {stats.examples} examples, longest {stats.longest}, mean {stats.mean:.0f}, "
              f"{stats.total_tokens} in all; {stats.truncated} cut at {stats.max_seq_len} "
              f"(losing {stats.tokens_lost} tokens)")
        for problem in stats.problems_at(stats.max_seq_len):
            print(f"  {problem.message}")
        suggested = stats.suggested_cutoff(stats.max_seq_len)
        if suggested:
            print(f"  A cutoff of {suggested} tokens (--max-seq-len {suggested}) is just above the longest example: "
                  "less memory, nothing cut.")
    if not report.usable:
        print("No usable row: this file cannot be trained on as it is.")
