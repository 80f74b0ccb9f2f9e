"""One example as the model sees it. Simple view: the conversation, speaker by speaker (System / You / Model),
the words trained on coloured and the rest grey, whatever the cutoff removes struck through. Expert view: the
chat template's text itself, markers included.

The view follows the window's Simple / Expert switch by itself (through the page it sits on), so the page that
shows it only hands it pieces."""
from __future__ import annotations

import html

from PySide6.QtWidgets import QTextBrowser

from ui.theme import ACCENT


def span(piece) -> str:
    text = html.escape(piece.text)
    if piece.truncated:
        style = "color:#e74c3c; text-decoration:line-through;"
    elif piece.trained:
        style = f"color:{ACCENT}; font-weight:600; background-color:rgba(47,125,225,0.12);"
    else:
        style = "color:#8a8f98;"
    return f'<span style="{style}">{text}</span>'


class TokenView(QTextBrowser):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setOpenLinks(False)
        self.pieces = []
        self.expert = False
        self._studio = None  # the window's Studio, found when first shown

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if self._studio is None:
            widget = self.parentWidget()
            while widget is not None and not hasattr(widget, "studio"):
                widget = widget.parentWidget()
            if widget is not None:
                self._studio = widget.studio
                self._studio.view_changed.connect(self.set_expert)
                self.set_expert(self._studio.expert)
        super().showEvent(event)

    def set_expert(self, expert: bool) -> None:
        self.expert = expert
        self._render()

    def set_pieces(self, pieces) -> None:
        """pieces: studio.data.Piece(text, trained, truncated) in order."""
        self.pieces = list(pieces)
        self._render()

    def _render(self) -> None:
        if not self.pieces:
            return
        if self.expert:
            body = "".join(span(piece) for piece in self.pieces)
            self.setHtml('<div style="white-space:pre-wrap; font-family:monospace;">' + body + "</div>")
            return
        from studio.chat import conversation_turns

        own_prompt = bool(self._studio and self._studio.project.data.system_prompt)
        rows = []
        for turn in conversation_turns(self.pieces):
            speaker = turn.speaker
            if speaker == "System" and not own_prompt:  # the user never wrote it: say where it comes from
                speaker = "System (added by the model's template, not by you)"
            label = f"<b>{html.escape(speaker)}:</b><br>" if speaker else ""
            rows.append(f'<p>{label}<span style="white-space:pre-wrap;">'
                        + "".join(span(piece) for piece in turn.spans) + "</span></p>")
        self.setHtml("".join(rows))

    def trained_text(self) -> str:
        return "".join(p.text for p in self.pieces if p.trained and not p.truncated)
