"""Simple or Expert view: a view preference (QSettings, like the theme), never a project setting.

Simple (the default) speaks plainly and shows the few choices that matter; the rest keep the values the
project already has, which the core's presets chose. Expert shows every setting with its technical name.
Switching changes what is shown, never what the project holds."""
from __future__ import annotations

from PySide6.QtCore import QSettings

SIMPLE, EXPERT = "simple", "expert"


def saved_mode() -> str:
    value = QSettings().value("view_mode", SIMPLE)
    return value if value in (SIMPLE, EXPERT) else SIMPLE


def save_mode(mode: str) -> None:
    QSettings().setValue("view_mode", mode if mode in (SIMPLE, EXPERT) else SIMPLE)
