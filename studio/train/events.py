"""The event stream: JSON lines with a `type`, a timestamp and a step.

Types: log, progress, metrics, eval, checkpoint, memory, error, done. The worker writes each event to
events.jsonl in the run folder and to stdout, so a live reader (CLI or GUI) and a later re-plot see the same.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Iterator

TYPES = ("log", "progress", "metrics", "eval", "checkpoint", "memory", "error", "done")
PREFIX = "@@ftstudio "  # marks our lines on stdout, so stray prints from libraries are told apart


class EventWriter:
    def __init__(self, path: Path, echo: bool = True):
        self.path = Path(path)
        self.echo = echo
        self._handle = self.path.open("a", encoding="utf-8")

    def emit(self, type_: str, step: int = 0, **fields: Any) -> dict:
        assert type_ in TYPES, type_
        event = {"type": type_, "time": round(time.time(), 3), "step": step, **fields}
        line = json.dumps(event, ensure_ascii=False, default=str)
        self._handle.write(line + "\n")
        self._handle.flush()
        if self.echo:
            sys.stdout.write(PREFIX + line + "\n")
            sys.stdout.flush()
        return event

    def close(self) -> None:
        self._handle.close()


def parse_line(line: str) -> dict | None:
    """An event from one line of worker stdout, or None for any other output."""
    if not line.startswith(PREFIX):
        return None
    try:
        return json.loads(line[len(PREFIX):])
    except json.JSONDecodeError:
        return None


def read_events(path: Path) -> Iterator[dict]:
    """Every complete event of a run's events.jsonl (a line cut by a crash is skipped)."""
    path = Path(path)
    if not path.is_file():
        return
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue
