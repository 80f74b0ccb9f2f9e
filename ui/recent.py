"""The recent-projects list: a small JSON file in the user's settings folder (a preference, not project state)."""
from __future__ import annotations

import json
from pathlib import Path

from studio import paths
from studio.fileio import atomic_write_text

KEEP = 10


NAME = "recent_projects.json"


def _file() -> Path:
    return paths.settings_dir() / NAME


def load() -> list[Path]:
    saved = _file()
    if not saved.is_file():
        saved = paths.home() / NAME  # where versions up to 0.1.0 kept it (the cache folder)
    try:
        entries = json.loads(saved.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [Path(p) for p in entries if isinstance(p, str) and Path(p).is_file()]


def add(path: Path | None) -> None:
    if path is None:
        return
    path = Path(path).resolve()
    entries = [path] + [p for p in load() if p.resolve() != path]
    try:
        atomic_write_text(_file(), json.dumps([str(p) for p in entries[:KEEP]], indent=1))
    except OSError:
        pass  # a read-only home folder must not stop the app
