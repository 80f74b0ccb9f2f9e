"""Stage: Test."""
from __future__ import annotations

from PySide6.QtWidgets import QLabel, QVBoxLayout

from ui.pages import Page


class TestPage(Page):
    title = "Test"
    icon = "test.svg"

    def __init__(self, studio):
        super().__init__(studio)
        QVBoxLayout(self).addWidget(QLabel("Test"))
