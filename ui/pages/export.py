"""Stage: Export."""
from __future__ import annotations

from PySide6.QtWidgets import QLabel, QVBoxLayout

from ui.pages import Page


class ExportPage(Page):
    title = "Export"
    icon = "export.svg"

    def __init__(self, studio):
        super().__init__(studio)
        QVBoxLayout(self).addWidget(QLabel("Export"))
