"""One page per stage. Each page is a `Page`: built from the shared `Studio`, reloads its controls on
`project_loaded`, writes every change into the project and calls `studio.edited()`."""
from __future__ import annotations

from PySide6.QtWidgets import QWidget

from ui.context import Studio


class Page(QWidget):
    title = ""
    icon = ""  # file name under resources/icons

    def __init__(self, studio: Studio):
        super().__init__()
        self.studio = studio
        studio.project_loaded.connect(self.load_project)

    @property
    def project(self):
        return self.studio.project

    def load_project(self) -> None:
        """Set every control from the project (after New / Open)."""

    def readiness(self) -> tuple[bool, str]:
        """(ready, one line shown under the stage's name in the left-hand list)."""
        return True, ""
