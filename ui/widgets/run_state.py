"""What a run folder says about itself, read from its events.jsonl: how far it got, how it ended, and
whether it can be resumed. The Train page's run picker and buttons are built on it."""
from __future__ import annotations

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

    @property
    def resumable(self) -> bool:
        return self.has_checkpoint and not self.finished

    def describe(self) -> str:
        """One line for the run picker: 'finished, 30 steps' / 'stopped at step 12/30'."""
        if self.finished:
            return f"finished, {self.total_steps} steps"
        if self.error:
            return f"failed at step {self.step}"
        if self.stopped:
            return f"stopped at step {self.step}/{self.total_steps}"
        if self.total_steps:
            return f"interrupted at step {self.step}/{self.total_steps}"
        return "not started"


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
            state.error = None
        elif kind == "error":
            state.error = event
        elif kind == "progress" and event.get("message") == "Training started":
            state.finished = state.stopped = False  # a resume began after an earlier end
            state.error = None
    state.has_checkpoint = latest_checkpoint(state.run_dir) is not None
    return state


def list_runs(root: Path) -> list[Path]:
    """The project's run folders, newest first."""
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if (p / "project.toml").is_file()), reverse=True)
