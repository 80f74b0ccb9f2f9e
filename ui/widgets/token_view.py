"""One example as the model sees it: the chat template's text, the trained tokens coloured and the rest
grey, and whatever the cutoff removes struck through."""
from __future__ import annotations

import html

from PySide6.QtWidgets import QTextBrowser

from ui.theme import ACCENT


class TokenView(QTextBrowser):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setOpenLinks(False)
        self.pieces = []

    def set_pieces(self, pieces) -> None:
        """pieces: studio.data.Piece(text, trained, truncated) in order."""
        self.pieces = list(pieces)
        spans = []
        for piece in self.pieces:
            text = html.escape(piece.text)
            if piece.truncated:
                style = "color:#e74c3c; text-decoration:line-through;"
            elif piece.trained:
                style = f"color:{ACCENT}; font-weight:600; background-color:rgba(47,125,225,0.12);"
            else:
                style = "color:#8a8f98;"
            spans.append(f'<span style="{style}">{text}</span>')
        self.setHtml('<div style="white-space:pre-wrap; font-family:monospace;">' + "".join(spans) + "</div>")

    def trained_text(self) -> str:
        return "".join(p.text for p in self.pieces if p.trained and not p.truncated)
