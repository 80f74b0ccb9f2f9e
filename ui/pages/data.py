"""Stage 2: the training data."""
from __future__ import annotations

from PySide6.QtWidgets import QFileDialog, QFormLayout, QLabel, QPushButton

from ui.pages import Page


class DataPage(Page):
    title = "Data"
    icon = "data.svg"

    def __init__(self, studio):
        super().__init__(studio)
        form = QFormLayout(self)
        self.data_label = QLabel()
        choose = QPushButton("Choose a data file…")
        choose.clicked.connect(self._choose)
        form.addRow("Training data:", self.data_label)
        form.addRow("", choose)

    def load_project(self) -> None:
        self.data_label.setText(self.project.data.train_file or "(no file chosen)")

    def readiness(self):
        return bool(self.project.data.train_file), self.project.data.train_file or "choose a data file"

    def _choose(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Training data", "", "Data (*.jsonl *.json *.csv *.tsv *.parquet *.txt)")
        if path:
            self.project.data.train_file = path
            self.data_label.setText(path)
            self.studio.edited()
