"""One side of the Test page: a model's name, what it is loaded from, and the conversation, answers growing
token by token as they stream in."""
from __future__ import annotations

from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QVBoxLayout, QWidget

from ui.theme import role_label


class ChatPane(QWidget):
    def __init__(self, title: str, parent=None):
        super().__init__(parent)
        self.heading = QLabel(title)
        self.heading.setStyleSheet("font-weight: 600;")
        self.source = role_label("hint", "")
        self.source.setWordWrap(True)
        self.view = QPlainTextEdit()
        self.view.setReadOnly(True)
        self.view.setPlaceholderText("Answers appear here, word by word.")
        self.answer = ""  # the answer being streamed (and, once done, the last one)
        self.pieces = 0  # how many streamed pieces made it
        self.pending_note = ""  # "[loading the model…]": shown until the answer's first piece replaces it
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.heading)
        layout.addWidget(self.source)
        layout.addWidget(self.view, 1)

    def ask(self, question: str) -> None:
        """Show the question and start a fresh answer under it."""
        if self.view.toPlainText():
            self._append("\n\n")
        self._append(f"You: {question}\nModel: ")  # speaker turns, as the conversation reads
        self.answer = ""
        self.pieces = 0
        self.pending_note = ""

    def note(self, text: str) -> None:
        """A passing status ("loading the model…") where the answer will start; the answer replaces it."""
        self._drop_pending_note()
        self.pending_note = f"[{text}]"
        self._append(self.pending_note)

    def add(self, piece: str) -> None:
        self._drop_pending_note()
        self.answer += piece
        self.pieces += 1
        self._append(piece)

    def clear(self) -> None:
        self.view.clear()
        self.answer = ""
        self.pending_note = ""

    def _drop_pending_note(self) -> None:
        if self.pending_note and self.view.toPlainText().endswith(self.pending_note):
            cursor = self.view.textCursor()
            cursor.movePosition(QTextCursor.MoveOperation.End)
            cursor.movePosition(QTextCursor.MoveOperation.Left, QTextCursor.MoveMode.KeepAnchor,
                                len(self.pending_note))
            cursor.removeSelectedText()
        self.pending_note = ""

    def _append(self, text: str) -> None:
        cursor = self.view.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(text)
        self.view.setTextCursor(cursor)
        self.view.ensureCursorVisible()
