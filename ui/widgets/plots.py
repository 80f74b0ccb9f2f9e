"""The training charts: loss (raw points, smoothed line, eval points) on top, then learning rate, gradient
norm, tokens per second and GPU memory (measured beside the planner's estimate).

Events only append numbers; a 100 ms timer redraws what changed, one chart per tick, so a fast stream of
events costs the GUI thread one small paint per tick instead of a paint of everything per event."""
from __future__ import annotations

from PySide6.QtCore import QEvent, QTimer
from PySide6.QtWidgets import QGridLayout, QLabel, QSizePolicy, QWidget

from studio import units
from studio.glossary import TERMS
from studio.train.events import Curves
from ui.theme import COLORS

REDRAW_MS = 100
CHARTS = ("loss", "lr", "grad", "speed", "memory")
SMOOTHING = 0.6  # weight of the past in the loss EMA (TensorBoard's default)
LOSS_TITLE = (f"Loss, lower is better: <span style='color:{COLORS['train']}'>● each step</span> · "
              f"<span style='color:{COLORS['train']}'>━ smoothed</span> · "
              f"<span style='color:{COLORS['eval']}'>● held-back examples (eval loss)</span>")


def smoothed(values: list[float], weight: float = SMOOTHING) -> list[float]:
    """Exponential moving average with the start-up bias removed, so the first points are not pulled to 0."""
    out, average = [], 0.0
    for i, value in enumerate(values, start=1):
        average = weight * average + (1 - weight) * value
        out.append(average / (1 - weight ** i))
    return out


class TrainingPlots(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(4)
        self.curves = Curves()  # one value per step, the last one seen (studio.train.events)
        series = self.curves.series
        self.loss, self.eval, self.lr = series["loss"], series["eval"], series["lr"]
        self.grad, self.speed, self.memory = series["grad"], series["speed"], series["memory"]
        # One view per chart, redrawn one per tick: a tick never paints all five (a paint of the whole set
        # took 35-100 ms on a busy 2-core machine, one chart a fifth of that). No grid lines: they made the
        # loss chart's paint 4 times slower (38 ms against 9 ms), and the axis ticks carry the same numbers.
        self._dirty: list[str] = []

        self.expert = False  # Simple view: the loss chart and its caption; Expert adds the other four
        # What the loss chart means, in words (the glossary's), under it: a chart alone tells a newcomer nothing.
        self.caption = QLabel(
            f"<span style='color:{COLORS['train']}'>●</span> Loss: {TERMS['loss']} "
            f"<span style='color:{COLORS['eval']}'>●</span> Eval loss (held-back examples): {TERMS['eval loss']}")
        self.caption.setWordWrap(True)
        self.caption.setProperty("role", "hint")
        grid.addWidget(self.caption, 1, 0, 1, 4)

        self.built = False  # the charts are made when first shown: importing pyqtgraph takes 0.6 s
        self.timer = QTimer(self)
        self.timer.setInterval(REDRAW_MS)
        self.timer.timeout.connect(self.redraw_next)
        self.timer.start()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if not self.built:
            self._build()
        super().showEvent(event)

    def _build(self) -> None:
        import pyqtgraph as pg

        # The legend is the title line above the curves, never a box over them.
        self.loss_plot = self._plot(0, 0, LOSS_TITLE, colspan=4)
        self.raw_curve = self.loss_plot.plot(pen=None, symbol="o", symbolSize=5, symbolPen=None,
                                             symbolBrush=pg.mkColor(COLORS["train"] + "90"), name="train (raw)")
        self.smooth_curve = self.loss_plot.plot(pen=pg.mkPen(COLORS["train"], width=2), name="train (smoothed)")
        self.eval_curve = self.loss_plot.plot(pen=pg.mkPen(COLORS["eval"], width=1.5), symbol="o", symbolSize=7,
                                              symbolBrush=COLORS["eval"], symbolPen=None, name="eval")
        self.lr_plot = self._plot(2, 0, "Learning rate")
        self.lr_curve = self.lr_plot.plot(pen=pg.mkPen(COLORS["lr"], width=2))
        self.grad_plot = self._plot(2, 1, "Gradient norm")
        self.grad_curve = self.grad_plot.plot(pen=pg.mkPen(COLORS["grad"], width=1.5))
        self.speed_plot = self._plot(2, 2, "Tokens / s")
        self.speed_curve = self.speed_plot.plot(pen=pg.mkPen(COLORS["speed"], width=1.5))
        self.memory_plot = self._plot(2, 3, "GPU memory (GB)")
        self.memory_curve = self.memory_plot.plot(pen=pg.mkPen(COLORS["measured"], width=2), symbol="o",
                                                  symbolSize=6, symbolBrush=COLORS["measured"], symbolPen=None)
        self.estimate_line = pg.InfiniteLine(angle=0, pen=pg.mkPen(COLORS["estimate"], width=1.5, dash=[4, 4]),
                                             label="estimate", labelOpts={"position": 0.1})
        self.estimate_line.setVisible(False)
        self.memory_plot.addItem(self.estimate_line)
        self.layout().setRowStretch(0, 3)
        self.layout().setRowStretch(2, 2)
        self._apply_palette()
        self.built = True
        self.set_expert(self.expert)
        self._dirty = list(CHARTS)  # draw what arrived before the charts existed

    def _plot(self, row: int, col: int, title: str, colspan: int = 1):
        import pyqtgraph as pg

        widget = pg.PlotWidget(title=title)
        widget.setMinimumSize(120, 120)
        # The chart's own size hint grows with its title and tick labels; let the grid share the width instead.
        widget.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Expanding)
        self.layout().addWidget(widget, row, col, 1, colspan)
        plot = widget.getPlotItem()
        plot.setMenuEnabled(False)
        plot.getAxis("left").setWidth(48)
        return plot

    def set_expert(self, expert: bool) -> None:
        """Simple view: the loss chart with its caption. Expert: also learning rate, gradient norm, speed and
        GPU memory (that one only when there is a GPU to measure: an empty chart says nothing)."""
        self.expert = expert
        if not self.built:
            return
        for name in ("lr", "grad", "speed"):
            self._plots[name].getViewWidget().setVisible(expert)
        self._show_memory()
        self.layout().setRowStretch(2, 2 if expert else 0)  # Simple view: the loss chart takes the room

    def _show_memory(self) -> None:
        shown = self.expert and self.has_memory
        self.memory_plot.getViewWidget().setVisible(shown)
        for column in range(4):  # the three other small charts share the row when it is hidden
            self.layout().setColumnStretch(column, 1 if column < 3 or shown else 0)

    @property
    def has_memory(self) -> bool:
        return bool(self.memory.steps or self.estimate_bytes)

    @property
    def _plots(self):
        return {"loss": self.loss_plot, "lr": self.lr_plot, "grad": self.grad_plot, "speed": self.speed_plot,
                "memory": self.memory_plot}

    # --- data -----------------------------------------------------------------------------------------
    @property
    def estimate_bytes(self) -> int | None:
        return self.curves.estimate_bytes

    def add_event(self, event: dict) -> None:
        """Take the numbers a training event carries; drawing happens on a later timer tick."""
        changed = ["loss" if name == "eval" else name for name in self.curves.add(event)]
        self._dirty += [name for name in dict.fromkeys(changed) if name not in self._dirty]

    def clear(self) -> None:
        self.curves.clear()
        self._dirty = list(CHARTS)  # emptied one chart per tick, like any update

    @property
    def points(self) -> int:
        """Train loss points received so far (what a user sees as the plot filling up)."""
        return len(self.loss.steps)

    # --- drawing --------------------------------------------------------------------------------------
    def redraw_next(self) -> None:
        """One chart per tick, the one waiting longest."""
        if self._dirty and self.built:
            self._draw(self._dirty.pop(0))

    def redraw(self) -> None:
        """Every chart that changed, now (for tests, and screenshots)."""
        while self._dirty and self.built:
            self._draw(self._dirty.pop(0))

    def _draw(self, name: str) -> None:
        if name == "loss":
            self.raw_curve.setData(self.loss.steps, self.loss.values)
            self.smooth_curve.setData(self.loss.steps, smoothed(self.loss.values))
            self.eval_curve.setData(self.eval.steps, self.eval.values)
        elif name == "lr":
            self.lr_curve.setData(self.lr.steps, self.lr.values)
        elif name == "grad":
            self.grad_curve.setData(self.grad.steps, self.grad.values)
        elif name == "speed":
            self.speed_curve.setData(self.speed.steps, self.speed.values)
        elif name == "memory":
            self.memory_curve.setData(self.memory.steps, self.memory.values)
            if self.estimate_bytes:
                self.estimate_line.setValue(self.estimate_bytes / units.GiB)
            self.estimate_line.setVisible(bool(self.estimate_bytes))
            self._show_memory()

    def _apply_palette(self) -> None:
        palette = self.palette()
        text = palette.text().color()
        for plot in self._plots.values():
            plot.getViewWidget().setBackground(palette.base().color())
            for side in ("left", "bottom"):
                plot.getAxis(side).setTextPen(text)
                plot.getAxis(side).setPen(text)
            plot.titleLabel.setAttr("color", text.name())
            plot.setTitle(plot.titleLabel.text)

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.PaletteChange and self.built:  # the theme changed: follow it
            self._apply_palette()
        super().changeEvent(event)
