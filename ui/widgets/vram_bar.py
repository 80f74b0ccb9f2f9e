"""The live GPU-memory picture: one stacked horizontal bar of the estimate's parts against the GPU's memory.

Painted by hand (a few rectangles), so a repaint on every slider move costs nothing."""
from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QGridLayout, QLabel, QSizePolicy, QWidget

from studio import units

# One colour per breakdown key, in the estimator's order; readable on light and dark backgrounds.
PART_COLORS = {
    "weights": "#4e79a7", "weights_quantized": "#76b7b2", "adapters": "#59a14f", "gradients": "#edc948",
    "optimizer": "#f28e2b", "activations": "#e15759", "logits": "#b07aa1", "workspace": "#ff9da7",
    "allocator": "#9c755f", "cuda_context": "#bab0ac", "program": "#bab0ac",
}


class VramBar(QWidget):
    """parts: [(key, bytes)]; capacity: the GPU's memory; limit: where "fits" ends (free memory)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.parts: list[tuple[str, int]] = []
        self.capacity = 0
        self.free = 0
        self.setMinimumHeight(34)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(320, 34)

    def set_data(self, parts: list[tuple[str, int]], capacity: int, free: int) -> None:
        self.parts, self.capacity, self.free = parts, capacity, free
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        area = QRectF(self.rect()).adjusted(1, 4, -1, -4)
        total = sum(n for _, n in self.parts)
        scale = max(total, self.capacity, 1)
        dark = self.palette().window().color().lightness() < 128
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor("#3a3d42" if dark else "#e6e8eb"))
        painter.drawRoundedRect(area, 4, 4)
        x = area.left()
        for key, n in self.parts:
            width = area.width() * n / scale
            painter.setBrush(QColor(PART_COLORS.get(key, "#888888")))
            painter.drawRect(QRectF(x, area.top(), width, area.height()))
            x += width
        if self.capacity:  # the GPU's size, and the free memory the verdict is measured against
            for where, style in ((self.capacity, Qt.PenStyle.SolidLine), (self.free, Qt.PenStyle.DashLine)):
                if 0 < where < scale or where == self.capacity:
                    px = area.left() + area.width() * min(where, scale) / scale
                    painter.setPen(QPen(QColor("#e6e6e6" if dark else "#1e1f22"), 2, style))
                    painter.drawLine(int(px), int(area.top()) - 3, int(px), int(area.bottom()) + 3)
        painter.end()


class VramLegend(QWidget):
    """Colour swatch, the part's words and its size, one row per part that is not zero."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setHorizontalSpacing(8)
        self.grid.setVerticalSpacing(2)
        self.rows: list[tuple[QLabel, QLabel, QLabel]] = []

    def set_parts(self, parts: list[tuple[str, str, int]]) -> None:
        """parts: [(key, words, bytes)]; rows are reused so that typing in a spin box never rebuilds widgets."""
        while len(self.rows) < len(parts):
            row = len(self.rows)
            swatch, words, size = QLabel(), QLabel(), QLabel()
            swatch.setFixedSize(12, 12)
            size.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            for column, widget in enumerate((swatch, words, size)):
                self.grid.addWidget(widget, row, column)
            self.rows.append((swatch, words, size))
        for i, (swatch, words, size) in enumerate(self.rows):
            visible = i < len(parts)
            for widget in (swatch, words, size):
                widget.setVisible(visible)
            if visible:
                key, text, n = parts[i]
                if swatch.property("part") != key:  # style sheets are slow to set: only when the part changes
                    swatch.setProperty("part", key)
                    swatch.setStyleSheet(f"background: {PART_COLORS.get(key, '#888888')}; border-radius: 2px;")
                words.setText(text)
                size.setText(units.memory(n, 2))
