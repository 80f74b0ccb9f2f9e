"""One page per stage. Each page is a `Page`: built from the shared `Studio`, it changes the project only through
`studio.apply(...)` and redraws what a change touches; the rules it shows are in `studio/`.

Simple and Expert view: a page passes the widgets only an expert needs to `expert_only(...)`, and relabels
what it must in `view_changed(expert)`; nothing else about the view lives in a page."""
from __future__ import annotations

from PySide6.QtWidgets import QWidget

from ui.context import EVERYTHING, Studio


class Page(QWidget):
    title = ""
    icon = ""  # file name under resources/icons

    def __init__(self, studio: Studio):
        super().__init__()
        self.studio = studio
        self._expert_widgets: list[QWidget] = []
        studio.changed.connect(self._project_changed)
        studio.view_changed.connect(self._view_changed)

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

    # --- Simple / Expert view -------------------------------------------------------------------------
    def expert_only(self, *widgets: QWidget) -> None:
        """These widgets appear in Expert view only (their settings keep the project's values meanwhile)."""
        self._expert_widgets.extend(widgets)
        if not self.studio.expert:
            for widget in widgets:  # hide() only: showing a widget before it has a parent opens a window
                widget.hide()

    def _view_changed(self, expert: bool) -> None:
        for widget in self._expert_widgets:
            widget.setVisible(expert)
        self.view_changed(expert)

    def view_changed(self, expert: bool) -> None:
        """Relabel what the view changes (plain words in Simple view, technical names in Expert)."""
