"""Stage 1: the base model."""
from __future__ import annotations

from PySide6.QtWidgets import QFormLayout, QLabel

from ui.pages import Page


class ModelPage(Page):
    title = "Model"
    icon = "model.svg"

    def __init__(self, studio):
        super().__init__(studio)
        form = QFormLayout(self)
        self.name_label = QLabel()
        form.addRow("Base model:", self.name_label)

    def load_project(self) -> None:
        self.name_label.setText(self.project.model.name)
