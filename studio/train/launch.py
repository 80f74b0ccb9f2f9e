"""Starting and watching the training worker process. Used by the CLI directly and by the GUI's thread."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

from studio.project import Project
from studio.train import distributed
from studio.train.events import parse_line
from studio.train.runs import STOP_FILE, create_run, load_run_project
from studio.train.worker import memory_fix


class TrainingProcess:
    """One running worker. Iterate `events()` to follow it; `request_stop()` asks it to save and stop."""

    def __init__(self, run_dir: Path, resume: bool = False):
        self.run_dir = Path(run_dir)
        (self.run_dir / STOP_FILE).unlink(missing_ok=True)
        command = [sys.executable, "-m", "studio.train.worker", str(self.run_dir)] + (["--resume"] if resume else [])
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        command, env = distributed.worker_command(self.run_dir, command, env)  # several GPUs: one worker each
        # Our own process group, so a hard cancel also ends anything the worker started.
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        env=env, start_new_session=True, bufsize=1)
        self.other_output: list[str] = []  # library warnings and tracebacks, kept for the log view

    def events(self) -> Iterator[dict]:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            event = parse_line(line)
            if event is not None:
                yield event
            elif line.strip():
                self.other_output.append(line.rstrip())
                yield {"type": "log", "step": None, "message": line.rstrip(), "raw": True}
        self.process.wait()

    def request_stop(self) -> None:
        """Stop after the current step, saving a checkpoint and the weights so far (resumable)."""
        (self.run_dir / STOP_FILE).touch()

    def kill(self) -> None:
        """Stop at once; the last periodic checkpoint stays on disk."""
        if self.process.poll() is not None:
            return
        if os.name == "nt":  # no process groups or signals there: taskkill ends the worker and its children
            subprocess.run(["taskkill", "/T", "/F", "/PID", str(self.process.pid)], capture_output=True, check=False)
            self.process.wait()
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    @property
    def returncode(self) -> int | None:
        return self.process.poll()


def start_training(project: Project | None = None, run_dir: Path | None = None, resume: bool = False) -> TrainingProcess:
    """Start a new run for `project`, or continue `run_dir` (with resume=True, from its last checkpoint)."""
    if run_dir is None:
        assert project is not None
        run_dir = create_run(project)
    return TrainingProcess(run_dir, resume=resume)


def run_training(project: Project | None = None, run_dir: Path | None = None, resume: bool = False,
                 on_event: Callable[[dict], None] | None = None) -> tuple[Path, dict | None]:
    """Train to the end in a worker; returns the run folder and the final `done` or `error` event."""
    proc = start_training(project, run_dir, resume)
    final = None
    try:
        for event in proc.events():
            if on_event:
                on_event(event)
            if event["type"] in ("done", "error"):
                final = event
    except KeyboardInterrupt:
        proc.request_stop()
        for event in proc.events():
            if on_event:
                on_event(event)
            if event["type"] in ("done", "error"):
                final = event
    if final is None:
        final = unexpected_end(proc)
    return proc.run_dir, final


# Popen reports a process ended by a signal as minus the signal's number (POSIX): 9 = SIGKILL, which Linux's
# out-of-memory killer sends; 11 and 6 = a segmentation fault or an abort inside a library.
_KILLED = (-9,)
_CRASHED = (-11, -6)


def unexpected_end(proc: TrainingProcess) -> dict:
    """The error event for a worker that ended without saying why (no done or error event): plain words, and
    the fix the app can apply when the cause is clear."""
    code, details = proc.returncode, "\n".join(proc.other_output[-15:])
    if code in _KILLED:
        how, fix = memory_fix(load_run_project(proc.run_dir), gpu=False)
        return {"type": "error", "details": details, "fix": fix, "oom": True,
                "message": "The system stopped the training process. That almost always means the computer ran "
                           f"out of memory (RAM). Close other programs, or, to make it fit, {how}."}
    if code in _CRASHED:
        return {"type": "error", "details": details,
                "message": f"The training process crashed inside one of its libraries (exit code {code}). Resume "
                           "tries again from the last checkpoint; if it happens again, the details below show "
                           "where."}
    return {"type": "error", "details": details,
            "message": f"The training process ended unexpectedly (exit code {code})."}
