"""Where things are: the app's own read-only files, and the user's folders it writes to.

Read-only (shipped with the app): `RESOURCES` (catalog, presets, samples, icons, check sets) and, in a desktop
package, the tools bundled beside its Python. Written (the user's, never inside the installed app, so an
upgrade or a second install finds them): caches (`home()`), settings (`settings_dir()`) and projects
(`projects_dir()`; each project's runs live beside it). FTSTUDIO_HOME, when set, holds all three (tests).
"""
from __future__ import annotations

import importlib.resources
import os
import sys
from pathlib import Path

import platformdirs

APP_ID = "fine-tune-studio"
APP_NAME = "Fine-Tune Studio"
REPO_ROOT = Path(__file__).resolve().parent.parent


def _resources() -> Path:
    """The wheel carries the repository's top-level resources/ as the package data studio/resources (see
    setup.py); a source checkout (editable install, PYTHONPATH) has only the top-level folder."""
    installed = Path(str(importlib.resources.files("studio") / "resources"))
    return installed if installed.is_dir() else REPO_ROOT / "resources"


RESOURCES = _resources()


def bundled_tools_dir() -> Path:
    """Tools a desktop package ships beside its own Python (llama.cpp's converter); absent in a pip install."""
    return Path(sys.prefix) / "share" / APP_ID / "tools"


def _override() -> Path | None:
    env = os.environ.get("FTSTUDIO_HOME")
    return Path(env).expanduser() if env else None


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def home() -> Path:
    """Caches the app can rebuild: the converted embedded model, downloaded tools, tokenized data."""
    return _made(_override() or Path(platformdirs.user_cache_dir(APP_ID)))


def settings_dir() -> Path:
    """The user's preferences (recent projects): the platform's config folder, which cache cleaners leave."""
    return _made(_override() or Path(platformdirs.user_config_dir(APP_ID)))


def projects_dir() -> Path:
    """Where new projects go: Documents/Fine-Tune Studio (FTSTUDIO_HOME/projects when set)."""
    override = _override()
    return _made(override / "projects" if override else Path(platformdirs.user_documents_dir()) / APP_NAME)


def models_dir() -> Path:
    return home() / "models"


def tools_dir() -> Path:
    return home() / "tools"


def data_cache_dir() -> Path:
    return home() / "datasets"
