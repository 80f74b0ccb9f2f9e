"""One page per stage. Each page is a `Page`: built from the shared `Studio`, it changes the project only through
`studio.apply(...)` and redraws what a change touches; the rules it shows are in `studio/`."""
from __future__ import annotations

from PySide6.QtWidgets import QWidget

from ui.context import EVERYTHING, Studio


class Page(QWidget):
    title = ""
    icon = ""  # file name under resources/icons

    def __init__(self, studio: Studio):
        super().__init__()
        self.studio = studio
        studio.changed.connect(self._project_changed)

    @property
    def project(self):
        return self.studio.project

    def _project_changed(self, keys: frozenset) -> None:
        if keys is EVERYTHING:
            self.load_project()
        else:
            self.project_changed(keys)

    def load_project(self) -> None:
        """Set every control from the project (after New / Open)."""

    def project_changed(self, keys: frozenset) -> None:
        """Some settings changed (`keys`, like "train.max_seq_len"), here or on another page."""

    def readiness(self) -> tuple[bool, str]:
        """(ready, one line shown under the stage's name in the left-hand list)."""
        return True, ""
