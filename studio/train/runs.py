"""Run folders: runs/<project>/<timestamp>/ beside the project file, holding a frozen copy of the project,
the event stream, checkpoints, the adapter (or full model), the merged model and the exports."""
from __future__ import annotations

import copy
import re
import time
from pathlib import Path

from studio.errors import StudioError
from studio.fileio import ensure_writable_dir
from studio.project import Project, load_project, save_project

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
    if not project.model.name.startswith("embedded") and project.resolve(project.model.name).exists():
        frozen.model.name = str(project.resolve(project.model.name))
    if project.export.output_dir:  # so the run's own export lands where the project's Export page looks
        frozen.export.output_dir = str(project.resolve(project.export.output_dir))
    save_project(frozen, run_dir / PROJECT_FILE)
    return run_dir


def load_run_project(run_dir: Path) -> Project:
    run_dir = Path(run_dir)
    if not (run_dir / PROJECT_FILE).is_file():
        raise StudioError(f"{run_dir} is not a training run folder (it has no {PROJECT_FILE}).")
    return load_project(run_dir / PROJECT_FILE)


def list_runs(project: Project) -> list[Path]:
    """The project's run folders, newest first."""
    root = runs_root(project)
    return sorted((p for p in root.glob("*") if (p / PROJECT_FILE).is_file()), reverse=True) if root.is_dir() else []


def latest_run(project: Project) -> Path | None:
    runs = list_runs(project)
    return runs[0] if runs else None


def trained_weights_dir(run_dir: Path) -> Path | None:
    """The adapter (LoRA family) or the full model a finished or stopped run left behind."""
    for name in ("adapter", "model"):
        folder = Path(run_dir) / name
        if (folder / "adapter_config.json").is_file() or (folder / "config.json").is_file():
            return folder
    return None


def latest_checkpoint(run_dir: Path) -> Path | None:
    folder = Path(run_dir) / "checkpoints"
    ckpts = sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1])) if folder.is_dir() else []
    return ckpts[-1] if ckpts else None
