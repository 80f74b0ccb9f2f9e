"""Starting and watching the training worker process. Used by the CLI directly and by the GUI's thread."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

from studio.project import Project
from studio.train import distributed
from studio.train.events import parse_line
from studio.train.runs import STOP_FILE, create_run, load_run_project, record_lost_end
from studio.train.worker import memory_fix


class TrainingProcess:
    """One running worker. Iterate `events()` to follow it; `request_stop()` asks it to save and stop."""

    def __init__(self, run_dir: Path, resume: bool = False):
        self.run_dir = Path(run_dir)
        (self.run_dir / STOP_FILE).unlink(missing_ok=True)
        command = [sys.executable, "-m", "studio.train.worker", str(self.run_dir)] + (["--resume"] if resume else [])
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        command, env = distributed.worker_command(self.run_dir, command, env)  # several GPUs: one worker each
        self.oom_kills_before = oom_kill_count()
        self.ended_by_user = False  # kill() was called: an end without a word is then no mystery
        # Our own process group, so a hard cancel also ends anything the worker started, and a Ctrl-C or a
        # closed terminal reaches only us: the worker hears of it as a stop request, or as its reader gone.
        # No stdin: nothing the worker runs may wait for an answer nobody sees.
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True,
                                        bufsize=1)
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
        self.ended_by_user = True
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
    except KeyboardInterrupt:  # a second Ctrl-C leaves at once: the worker then saves and stops on its own
        proc.request_stop()
        sys.stderr.write("\nStopping after this step and saving a checkpoint (Ctrl-C again leaves now; "
                         "the training still saves and stops by itself).\n")
        for event in proc.events():
            if on_event:
                on_event(event)
            if event["type"] in ("done", "error"):
                final = event
    if final is None:
        final = unexpected_end(proc)
    return proc.run_dir, final


# Popen reports a process ended by a signal as minus the signal's number (POSIX): 9 = SIGKILL, which Linux's
# out-of-memory killer sends (and so does `kill -9`); 15 = SIGTERM, 1 = SIGHUP; 11 and 6 = a segmentation
# fault or an abort inside a library.
_KILLED = (-9, -15, -1)
_CRASHED = (-11, -6)


def unexpected_end(proc: TrainingProcess) -> dict:
    """The error event for a worker that ended without saying why (no done or error event): plain words, the
    fix the app can apply when the cause is known, and the same event written to the run's events.jsonl."""
    event = explain_end(proc)
    record_lost_end(proc.run_dir, {k: v for k, v in event.items() if k != "details"})
    return event


def explain_end(proc: TrainingProcess) -> dict:
    code, details = proc.returncode, "\n".join(proc.other_output[-15:])
    resume = "Resume continues from the last checkpoint."
    if proc.ended_by_user:
        return {"type": "error", "details": details, "kind": "stopped_now",
                "message": f"You ended the training process at once (Stop now). {resume}"}
    if code in _KILLED and killed_for_memory(proc.process.pid, proc.oom_kills_before):
        how, fix = memory_fix(load_run_project(proc.run_dir), gpu=False)
        return {"type": "error", "details": details, "fix": fix, "oom": True, "kind": "out_of_memory",
                "message": "The system stopped the training process because the computer ran out of memory "
                           f"(RAM). Close other programs, or, to make it fit, {how}."}
    if code in _KILLED:
        return {"type": "error", "details": details, "kind": "stopped_from_outside",
                "message": "The training process was stopped from outside: another program or a person ended it "
                           f"(the system did not report running out of memory). {resume}"}
    if code in _CRASHED:
        return {"type": "error", "details": details, "kind": "crashed",
                "message": f"The training process crashed inside one of its libraries (exit code {code}). Resume "
                           "tries again from the last checkpoint; if it happens again, the details below show "
                           "where."}
    return {"type": "error", "details": details, "kind": "ended_unexpectedly",
            "message": f"The training process ended unexpectedly (exit code {code})."}


# --- was it the out-of-memory killer? ------------------------------------------------------------------

def killed_for_memory(pid: int, oom_kills_before: int | None) -> bool:
    """Only when the system says so: the kernel log names this process as killed for memory, or the
    out-of-memory kill count of our memory group went up while it ran. A `kill -9` leaves neither."""
    after = oom_kill_count()
    if oom_kills_before is not None and after is not None and after > oom_kills_before:
        return True
    return kernel_log_names_oom_kill(pid)


def kernel_log_names_oom_kill(pid: int) -> bool:
    pattern = re.compile(rf"Killed process {pid}\b|[,\s]pid={pid}[,\s]")
    for command in (["dmesg"], ["journalctl", "-k", "-q", "-n", "3000", "--no-pager"]):
        try:
            output = subprocess.run(command, capture_output=True, text=True, timeout=5,
                                    stdin=subprocess.DEVNULL).stdout
        except (OSError, subprocess.SubprocessError):
            continue  # not installed, or the log is not ours to read: the cause stays unknown
        if pattern.search(output or ""):
            return True
    return False


def oom_kill_count() -> int | None:
    """Out-of-memory kills counted by this process's memory cgroup (v2 memory.events, v1 memory.oom_control),
    None where there is no such count (other systems, or no access)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            candidate = Path("/sys/fs/cgroup") / path.lstrip("/") / "memory.events"
        elif "memory" in controllers.split(","):
            candidate = Path("/sys/fs/cgroup/memory") / path.lstrip("/") / "memory.oom_control"
        else:
            continue
        try:
            found = re.search(r"^oom_kill (\d+)$", candidate.read_text(), re.MULTILINE)
        except OSError:
            continue
        if found:
            return int(found.group(1))
    return None
