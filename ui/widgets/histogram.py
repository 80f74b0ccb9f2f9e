"""Token lengths of the examples as a bar chart, with the cutoff drawn across it: bars past the line are the
examples that get cut."""
from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtWidgets import QApplication

from ui.theme import ACCENT

CUT_COLOR = "#e74c3c"


class TokenHistogram(pg.PlotWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMenuEnabled(False)
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.setLabel("bottom", "tokens per example")
        self.setLabel("left", "examples")
        self.showGrid(y=True, alpha=0.2)
        self.bars = pg.BarGraphItem(x0=[0], x1=[1], height=[0], brush=ACCENT)
        self.addItem(self.bars)
        self.cutoff_line = pg.InfiniteLine(angle=90, movable=False,
                                           pen=pg.mkPen(CUT_COLOR, width=2, style=pg.QtCore.Qt.PenStyle.DashLine),
                                           label="cutoff {value:.0f}", labelOpts={"position": 0.9, "color": CUT_COLOR})
        self.addItem(self.cutoff_line)
        self.bins: list[tuple[int, int, int]] = []
        self.follow_theme()

    def follow_theme(self) -> None:
        """Draw on the window's own background, light or dark, instead of pyqtgraph's black."""
        palette = QApplication.instance().palette()
        self.setBackground(palette.base().color())
        text = palette.text().color()
        for side in ("left", "bottom"):
            axis = self.getAxis(side)
            axis.setPen(pg.mkPen(text))
            axis.setTextPen(pg.mkPen(text))

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self.follow_theme()  # the theme may have changed since the last time

    def set_bins(self, bins: list[tuple[int, int, int]], cutoff: int) -> None:
        """bins: (above, up_to, count), as studio.data.stats.histogram makes them. The view ends shortly after
        the longest example; the cutoff line shows only when it falls inside."""
        self.bins = bins
        self.bars.setVisible(bool(bins))
        right = max([b[1] for b in bins], default=cutoff)
        self.cutoff_line.setValue(cutoff)
        self.cutoff_line.setVisible(cutoff <= right * 1.1)
        if not bins:  # pyqtgraph's bar item cannot take empty lists
            return
        brushes = [pg.mkBrush(CUT_COLOR if above >= cutoff else ACCENT) for above, _, _ in bins]
        self.bars.setOpts(x0=[b[0] for b in bins], x1=[b[1] for b in bins], height=[b[2] for b in bins],
                          brushes=brushes, pen=pg.mkPen(self.backgroundBrush().color(), width=1))
        self.setXRange(0, max(right, cutoff if cutoff <= right * 1.1 else 0) * 1.05, padding=0)
        self.setYRange(0, max([1] + [b[2] for b in bins]) * 1.1, padding=0)
