"""What a run folder says about itself, read from its events.jsonl: how far it got, how it ended, and
whether it can be resumed. The Train page's run picker and buttons, and the CLI, are built on it."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from studio.train.events import read_events
from studio.train.runs import EVENTS_FILE, latest_checkpoint, record_lost_end


@dataclass
class RunState:
    run_dir: Path
    events: list[dict] = field(default_factory=list)
    step: int = 0
    total_steps: int = 0
    finished: bool = False     # trained to the last step
    stopped: bool = False      # stopped and saved on request
    error: dict | None = None  # the last error event, when the run ended with one
    has_checkpoint: bool = False
    final_loss: float | None = None

    @property
    def failed_before_training(self) -> bool:
        """Ended with an error before its first step, keeping nothing to resume, test or export (a setting
        or data problem found while starting): an attempt rather than a run."""
        from studio.train.runs import trained_weights_dir

        return (self.error is not None and self.step == 0 and not self.has_checkpoint
                and trained_weights_dir(self.run_dir) is None)

    @property
    def resumable(self) -> bool:
        return self.has_checkpoint and not self.finished

    def describe(self) -> str:
        """One line for the run picker: 'finished, 30 steps' / 'stopped at step 12/30'."""
        if self.finished:
            return f"finished, {self.total_steps} steps"
        if self.error:
            return "failed before training began" if self.step == 0 else f"failed at step {self.step}"
        if self.stopped:
            return f"stopped at step {self.step}/{self.total_steps}"
        if self.total_steps:
            return f"interrupted at step {self.step}/{self.total_steps}"
        return "not started"

    def summary(self) -> str:
        """How the run ended, and what to do next, in a sentence."""
        if self.finished:
            loss = f" Final loss {self.final_loss:.3f}." if self.final_loss is not None else ""
            return f"Finished {self.total_steps} steps.{loss}"
        if self.stopped:
            return f"Stopped and saved at step {self.step} of {self.total_steps}; Resume continues it."
        if self.error:
            return "Training stopped with a problem (see below)."
        if self.resumable:
            return f"Interrupted at step {self.step}; Resume continues from the last checkpoint."
        return f"Interrupted at step {self.step} before any checkpoint; start a new run."


def read_run(run_dir: Path) -> RunState:
    state = RunState(Path(run_dir))
    record_lost_end(state.run_dir)  # a run whose process was killed unseen says so from now on
    for event in read_events(state.run_dir / EVENTS_FILE):
        state.events.append(event)
        kind = event.get("type")
        state.step = max(state.step, event.get("step") or 0)
        state.total_steps = event.get("total_steps") or state.total_steps
        if kind == "done":
            state.stopped = bool(event.get("stopped"))
            state.finished = not state.stopped
            state.final_loss = event.get("final_loss")
            state.error = None
        elif kind == "error":
            state.error = event
        elif kind == "progress" and event.get("resumed"):  # the worker's start event: a resume began
            state.finished = state.stopped = False
            state.error = None
    state.has_checkpoint = latest_checkpoint(state.run_dir) is not None
    return state


def runs_worth_listing(runs: list[Path], read: Callable[[Path], RunState] | None = None,
                       keep: Path | None = None) -> list[Path]:
    """`runs` (newest first) without the older failed attempts that never trained: the newest such attempt
    stays (its error is the one to read), and so does `keep` (the run being looked at). Their folders stay on
    disk: nothing is lost, the list just does not fill up with "failed" lines after a few tries with a wrong
    setting."""
    read = read or read_run
    keep = Path(keep).resolve() if keep else None
    shown, attempt_shown = [], False
    for run in runs:
        if read(run).failed_before_training:
            if attempt_shown and not (keep is not None and Path(run).resolve() == keep):
                continue
            attempt_shown = True
        shown.append(run)
    return shown


def resume_hint(run_dir: Path) -> str:
    """What Resume would do for a run that ended without a word (a crash, a kill)."""
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        return "No checkpoint was saved yet; start a new run."
    return f"Resume continues from the checkpoint at step {checkpoint.name.split('-')[-1]}."
