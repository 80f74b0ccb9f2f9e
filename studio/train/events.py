"""The event stream: JSON lines with a `type`, a timestamp and a step.

Types: start, log, progress, metrics, eval, checkpoint, memory, error, done. The worker writes each event to
events.jsonl in the run folder and to stdout, so a live reader (CLI or GUI) and a later re-plot see the same.
Each process that trains a run begins with `start` and ends with `done` or `error`; an end that is missing
(a hard kill) is written by the next reader that knows of it (studio.train.runs.record_lost_end).
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

TYPES = ("start", "log", "progress", "metrics", "eval", "checkpoint", "memory", "error", "done")
PREFIX = "@@ftstudio "  # marks our lines on stdout, so stray prints from libraries are told apart


class EventWriter:
    """Events to `path` (None: to stdout only) and, with echo, to stdout for the live reader."""

    def __init__(self, path: Path | None, echo: bool = True):
        self.echo = echo
        self.reader_gone = False  # the process reading our stdout ended (a closed window, a killed CLI)
        self._handle = Path(path).open("a", encoding="utf-8") if path is not None else None

    def guard_output(self) -> None:
        """In the worker process: a library's own print must not die on a broken pipe either (the Trainer
        prints its logs); once the reader is gone, everything printed goes nowhere."""
        sys.stdout, sys.stderr = _Guarded(sys.stdout, self), _Guarded(sys.stderr, self)

    def emit(self, type_: str, step: int = 0, **fields: Any) -> dict:
        assert type_ in TYPES, type_
        event = {"type": type_, "time": round(time.time(), 3), "step": step, **fields}
        line = json.dumps(event, ensure_ascii=False, default=str)
        if self._handle is not None:
            self._handle.write(line + "\n")
            self._handle.flush()
        if self.echo:
            try:
                sys.stdout.write(PREFIX + line + "\n")
                sys.stdout.flush()
            except (BrokenPipeError, ValueError, OSError):
                self._lose_reader()
        return event

    def _lose_reader(self) -> None:
        if self.reader_gone:
            return
        """Nobody reads our output any more: keep writing events.jsonl, send everything else nowhere (a
        library's next print would fail on the broken pipe), and let the worker save and stop."""
        self.echo = False
        self.reader_gone = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        for fd in (1, 2):
            try:
                os.dup2(devnull, fd)
            except OSError:
                pass
        os.close(devnull)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


class _Guarded:
    """A stdout/stderr whose writes, once the reader is gone, go nowhere instead of raising."""

    def __init__(self, stream, writer: EventWriter):
        self._stream, self._writer = stream, writer

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except (BrokenPipeError, ValueError, OSError):
            self._writer._lose_reader()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except (BrokenPipeError, ValueError, OSError):
            self._writer._lose_reader()

    def __getattr__(self, name):
        return getattr(self._stream, name)


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


def open_segment(events: list[dict]) -> list[dict] | None:
    """The events of the last training process if it never wrote its end (done or error); None when it did,
    or when there are no events at all."""
    starts = [i for i, e in enumerate(events) if e.get("type") == "start"]
    segment = events[starts[-1]:] if starts else events
    if not segment or any(e.get("type") in ("done", "error") for e in segment):
        return None
    return segment


# --- charts: one value per step -----------------------------------------------------------------------

class StepSeries:
    """The (step, value) points of one curve, one value per step: a step seen again (a resumed run replays
    the steps after its checkpoint) replaces the value from before, so a re-plot never draws backwards."""

    def __init__(self):
        self._points: dict[float, float] = {}
        self._sorted: tuple[list[float], list[float]] | None = ([], [])

    def add(self, step, value) -> bool:
        if value is None:
            return False
        step, value = float(step), float(value)
        if self._sorted is not None and self._points and step <= self._sorted[0][-1]:
            self._sorted = None  # out of order: sort again when next read
        elif self._sorted is not None:
            self._sorted[0].append(step)
            self._sorted[1].append(value)
        self._points[step] = value
        return True

    def clear(self) -> None:
        self._points.clear()
        self._sorted = ([], [])

    def _order(self) -> tuple[list[float], list[float]]:
        if self._sorted is None:
            steps = sorted(self._points)
            self._sorted = (steps, [self._points[s] for s in steps])
        return self._sorted

    @property
    def steps(self) -> list[float]:
        return self._order()[0]

    @property
    def values(self) -> list[float]:
        return self._order()[1]


CHART_FIELDS = {"metrics": {"loss": "loss", "lr": "lr", "grad": "grad_norm"}, "eval": {"eval": "eval_loss"},
                "progress": {"speed": "tokens_per_s"}}


class Curves:
    """Every training chart's series, fed event by event (live) or from a whole events.jsonl (a re-plot)."""

    NAMES = ("loss", "eval", "lr", "grad", "speed", "memory")

    def __init__(self):
        self.series = {name: StepSeries() for name in self.NAMES}
        self.estimate_bytes: int | None = None

    def add(self, event: dict) -> list[str]:
        """Take the numbers an event carries; returns the names of the series it changed."""
        kind, step = event.get("type"), event.get("step") or 0
        if kind == "memory":
            self.estimate_bytes = event.get("estimate_bytes") or self.estimate_bytes
            self.series["memory"].add(step, (event.get("reserved_bytes") or 0) / 1e9)
            return ["memory"]
        return [name for name, field in CHART_FIELDS.get(kind, {}).items()
                if self.series[name].add(step, event.get(field))]

    def clear(self) -> None:
        for series in self.series.values():
            series.clear()
        self.estimate_bytes = None


def curves(events: Iterable[dict]) -> Curves:
    out = Curves()
    for event in events:
        out.add(event)
    return out


# --- how long a run takes ------------------------------------------------------------------------------

@dataclass
class SpeedForecast:
    seconds_per_step: float
    tokens_per_s: float | None
    step: int
    total_steps: int

    @property
    def remaining_s(self) -> float:
        return self.seconds_per_step * max(0, self.total_steps - self.step)

    @property
    def total_s(self) -> float:
        return self.seconds_per_step * self.total_steps

    def sentence(self) -> str:
        speed = f", {self.tokens_per_s:,.0f} tokens/s" if self.tokens_per_s else ""
        return (f"At the speed of its first steps ({self.seconds_per_step:.1f} s a step{speed}), the run takes "
                f"about {duration(self.total_s)} in all; about {duration(self.remaining_s)} are left.")


def speed_forecast(events: Iterable[dict], warmup_steps: int = 1) -> SpeedForecast | None:
    """Seconds per step measured on the last training process's steps (the first `warmup_steps` left out:
    they include compiling and memory allocation), or None before two steps have been timed."""
    progress = []
    for event in events:
        if event.get("type") == "start":
            progress = []
        elif event.get("type") == "progress" and event.get("total_steps"):
            progress.append(event)
    timed = [e for e in progress if e.get("eta_s") is not None][warmup_steps:]
    if len(timed) < 2:
        return None
    gaps = [(b["time"] - a["time"]) / max(1, b["step"] - a["step"]) for a, b in zip(timed, timed[1:])]
    last = timed[-1]
    return SpeedForecast(statistics.median(gaps), last.get("tokens_per_s"), last["step"], last["total_steps"])


def duration(seconds: float) -> str:
    minutes = int(round(seconds / 60))
    if minutes < 1:
        return "under a minute"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"
