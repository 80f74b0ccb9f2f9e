"""Where the app keeps its caches: the platform's user cache folder, or FTSTUDIO_HOME when set."""
from __future__ import annotations

import os
from pathlib import Path

import platformdirs

REPO_ROOT = Path(__file__).resolve().parent.parent
RESOURCES = REPO_ROOT / "resources"


def home() -> Path:
    env = os.environ.get("FTSTUDIO_HOME")
    folder = Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("fine-tune-studio"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def models_dir() -> Path:
    return home() / "models"


def tools_dir() -> Path:
    return home() / "tools"


def data_cache_dir() -> Path:
    return home() / "datasets"
