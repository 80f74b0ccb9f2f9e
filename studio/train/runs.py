"""Run folders: runs/<project>/<timestamp>/ beside the project file, holding a frozen copy of the project,
the event stream, checkpoints, the adapter (or full model), the merged model and the exports."""
from __future__ import annotations

import copy
import json
import re
import shutil
import time
from pathlib import Path

from studio.errors import StudioError
from studio.fileio import ensure_writable_dir, exclusive, is_locked
from studio.project import Project, load_project, save_project
from studio.train.events import open_segment

PROJECT_FILE = "project.toml"
EVENTS_FILE = "events.jsonl"
STOP_FILE = "STOP"  # its presence asks the worker to save a checkpoint and stop


def runs_root(project: Project) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", project.name).strip("-") or "project"
    return project.folder / "runs" / safe


def create_run(project: Project, root: Path | None = None) -> Path:
    """A new run folder with a frozen copy of the project (paths made absolute so the copy stands alone)."""
    project.validate()
    root = Path(root) if root else runs_root(project)
    ensure_writable_dir(root)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = root / stamp
    n = 1
    while run_dir.exists():
        n += 1
        run_dir = root / f"{stamp}-{n}"
    run_dir.mkdir(parents=True)
    frozen = copy.deepcopy(project)
    for key in ("train_file", "eval_file"):
        value = getattr(frozen.data, key)
        if value:
            setattr(frozen.data, key, str(project.resolve(value)))
    if project.export.output_dir:  # relative to the project's folder, not to the run's copy of it
        frozen.export.output_dir = str(project.resolve(project.export.output_dir))
    if not project.model.name.startswith("embedded") and project.resolve(project.model.name).exists():
        frozen.model.name = str(project.resolve(project.model.name))
    save_project(frozen, run_dir / PROJECT_FILE)
    return run_dir


def load_run_project(run_dir: Path) -> Project:
    run_dir = Path(run_dir)
    if not (run_dir / PROJECT_FILE).is_file():
        raise StudioError(f"{run_dir} is not a training run folder (it has no {PROJECT_FILE}).")
    return load_project(run_dir / PROJECT_FILE)


def latest_run(project: Project) -> Path | None:
    root = runs_root(project)
    runs = sorted(p for p in root.glob("*") if (p / PROJECT_FILE).is_file()) if root.is_dir() else []
    return runs[-1] if runs else None


def trained_weights_dir(run_dir: Path) -> Path | None:
    """The adapter (LoRA family) or the full model a finished or stopped run left behind."""
    for name in ("adapter", "model"):
        folder = Path(run_dir) / name
        if (folder / "adapter_config.json").is_file() or (folder / "config.json").is_file():
            return folder
    return None


def checkpoints(run_dir: Path) -> list[Path]:
    """Every checkpoint-N folder of a run, oldest first, complete or not."""
    folder = Path(run_dir) / "checkpoints"
    found = [p for p in folder.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()] if folder.is_dir() else []
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def checkpoint_complete(checkpoint: Path) -> bool:
    """The Trainer writes trainer_state.json last, after the weights, optimizer and random states: a
    checkpoint whose state file is missing or cut short was interrupted while it was being written."""
    try:
        state = json.loads((Path(checkpoint) / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return state.get("global_step") == int(Path(checkpoint).name.split("-")[-1])


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint (an incomplete newer one is passed over)."""
    complete = [p for p in checkpoints(run_dir) if checkpoint_complete(p)]
    return complete[-1] if complete else None


def remove_incomplete_checkpoints(run_dir: Path) -> list[int]:
    """Delete checkpoints cut short by a kill, so the Trainer never counts them among those it keeps; returns
    their steps."""
    removed = []
    for checkpoint in checkpoints(run_dir):
        if not checkpoint_complete(checkpoint):
            shutil.rmtree(checkpoint, ignore_errors=True)
            removed.append(int(checkpoint.name.split("-")[-1]))
    return removed


# --- who is training a run, and how its last training ended ----------------------------------------------

def training_lock(run_dir: Path):
    """Held by the worker for as long as it trains the run: a second training of the same run is refused,
    and a reader can tell a live run from one whose process is gone."""
    return exclusive(Path(run_dir), "train", f"The run {Path(run_dir).name} is already training (in another "
                                              "window or command). Wait for it to finish, or stop it first.")


def is_training(run_dir: Path) -> bool:
    return is_locked(Path(run_dir), "train")


def record_end(run_dir: Path, event: dict) -> dict:
    """Append an end the worker could not write itself (it was killed) to the run's events.jsonl."""
    event = {"type": "error", "time": round(time.time(), 3), **event}
    event.setdefault("step", 0)
    with (Path(run_dir) / EVENTS_FILE).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(event, ensure_ascii=False, default=str) + "\n")
    return event


def record_lost_end(run_dir: Path, event: dict | None = None) -> dict | None:
    """If the run's last training ended with no word (no done or error event) and no process trains it now,
    write down what is known: `event`, or a plain account of the step it reached. Returns what was written."""
    from studio.train.events import read_events

    segment = open_segment(list(read_events(Path(run_dir) / EVENTS_FILE)))
    if segment is None or is_training(run_dir):
        return None
    step = max((e.get("step") or 0 for e in segment), default=0)
    event = event or {"kind": "ended_without_a_word",
                      "message": f"The training process ended without finishing, at step {step}: it was stopped "
                                 "from outside (closed, killed, or the computer shut down). Resume continues "
                                 "from the last checkpoint."}
    return record_end(run_dir, {"step": step, **{k: v for k, v in event.items() if k != "type"}})
