"""The first-start welcome, shown in the window (not a dialog) when there is no recent project: try the sample,
or start with the user's own data file and a name for their model. Plain words; Simple view is the default."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from studio.starter import SAMPLE_DESCRIPTION, name_for_data, slug

DATA_FILTER = "Data files (*.jsonl *.json *.csv *.tsv *.txt *.xlsx *.ods *.parquet);;All files (*)"


class Welcome(QWidget):
    """Emits sample_chosen(), or own_data_chosen(data file, model name) once a file is picked and Start pressed."""

    sample_chosen = Signal()
    own_data_chosen = Signal(Path, str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("welcome")
        title = QLabel("<h1>Welcome to Fine-Tune Studio</h1>")
        intro = QLabel("Teach a small language model to answer the way you want, from examples of questions and "
                       "answers, and take it home to chat with (in Ollama or LM Studio). Nothing leaves this "
                       "computer. How would you like to start?")
        intro.setWordWrap(True)

        self.sample_button = QPushButton(f"Try the sample ({SAMPLE_DESCRIPTION})")
        self.sample_button.setToolTip("A ready project with 120 short pirate chats: train it in a few minutes "
                                      "to see how the app works. Your own data can come later.")
        self.sample_button.clicked.connect(self.sample_chosen)
        sample_note = QLabel("A few minutes on this computer; a good way to see every step once.")
        sample_note.setWordWrap(True)

        own_title = QLabel("<b>Start with my own data</b>")
        self.data_edit = QLineEdit()
        self.data_edit.setPlaceholderText("A file of examples: JSONL, JSON, CSV or a spreadsheet")
        self.data_edit.textChanged.connect(self._data_changed)
        browse = QPushButton("Choose file…")
        browse.clicked.connect(self._browse)
        data_row = QHBoxLayout()
        data_row.addWidget(self.data_edit, 1)
        data_row.addWidget(browse)
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("named after your data file")
        self.name_edit.textEdited.connect(lambda _text: setattr(self, "_name_typed", True))
        self._name_typed = False
        form = QFormLayout()
        form.addRow("Your data:", data_row)
        form.addRow("Your model's name:", self.name_edit)
        self.problem = QLabel()
        self.problem.setObjectName("problem")
        self.problem.setWordWrap(True)
        self.own_button = QPushButton("Start with this data")
        self.own_button.setEnabled(False)
        self.own_button.clicked.connect(self._own_chosen)
        own_note = QLabel("Your model, its files and its name in Ollama take the name above; you can change it "
                          "later on the Export page.")
        own_note.setWordWrap(True)

        for button in (self.sample_button, self.own_button):
            button.setMinimumHeight(36)
        box = QFrame()
        box.setFixedWidth(640)  # a column that reads well; the window around it may be any size
        layout = QVBoxLayout(box)
        layout.setSpacing(10)
        for widget in (title, intro, self.sample_button, sample_note, _line(), own_title):
            layout.addWidget(widget)
        layout.addLayout(form)
        layout.addWidget(self.problem)
        layout.addWidget(self.own_button)
        layout.addWidget(own_note)
        column = QVBoxLayout()
        column.addStretch(1)
        column.addWidget(box)
        column.addStretch(2)
        outer = QHBoxLayout(self)
        outer.addStretch(1)
        outer.addLayout(column)
        outer.addStretch(1)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Your data", str(Path.home()), DATA_FILTER)
        if path:
            self.data_edit.setText(path)

    def _data_changed(self, text: str) -> None:
        path = Path(text.strip()).expanduser() if text.strip() else None
        self.own_button.setEnabled(path is not None)
        self.problem.clear()
        if path is not None and not self._name_typed:
            self.name_edit.setText(name_for_data(path))

    def _own_chosen(self) -> None:
        path = Path(self.data_edit.text().strip()).expanduser()
        if not path.is_file():
            self.problem.setText(f"No file at {path}. Choose your data file with “Choose file…”.")
            return
        self.own_data_chosen.emit(path.resolve(), slug(self.name_edit.text()) if self.name_edit.text().strip()
                                  else name_for_data(path))


def _line() -> QFrame:
    line = QFrame()
    line.setFrameShape(QFrame.Shape.HLine)
    return line

