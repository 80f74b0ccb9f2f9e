"""The recent-projects list: a small JSON file in the app's folder (a preference, not project state)."""
from __future__ import annotations

import json
from pathlib import Path

from studio import paths
from studio.fileio import atomic_write_text

KEEP = 10


def _file() -> Path:
    return paths.home() / "recent_projects.json"


def load() -> list[Path]:
    try:
        entries = json.loads(_file().read_text(encoding="utf-8"))
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
