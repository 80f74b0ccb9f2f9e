"""Stage 4: training in the worker process, followed live."""
from __future__ import annotations

from PySide6.QtCore import QObject, QThread, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QMessageBox, QProgressBar, QPushButton, QVBoxLayout

from studio.project import save_project
from ui.pages import Page


class TrainingWatcher(QObject):
    """Reads the worker's events on a QThread and hands each to the GUI thread as a signal."""

    event = Signal(dict)
    finished = Signal()

    def __init__(self, process):
        super().__init__()
        self.process = process

    def run(self) -> None:
        for event in self.process.events():
            self.event.emit(event)
        self.finished.emit()


class TrainPage(Page):
    title = "Train"
    icon = "train.svg"

    def __init__(self, studio):
        import pyqtgraph as pg

        super().__init__(studio)
        self.process = None
        self.thread = None
        layout = QVBoxLayout(self)
        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start training")
        self.stop_button = QPushButton("Stop and save")
        self.stop_button.setEnabled(False)
        self.start_button.clicked.connect(self.start_training)
        self.stop_button.clicked.connect(self.stop_training)
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.stop_button)
        buttons.addStretch(1)
        self.progress = QProgressBar()
        self.status = QLabel("Ready.")
        self.plot = pg.PlotWidget(title="Loss")
        self.plot.setLabel("bottom", "step")
        self.loss_curve = self.plot.plot([], [], pen=pg.mkPen("#2f7de1", width=2), name="train")
        self.eval_curve = self.plot.plot([], [], pen=None, symbol="o", symbolBrush="#e8833a", name="eval")
        self.loss_points: list[tuple[int, float]] = []
        self.eval_points: list[tuple[int, float]] = []
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.plot, 1)

    def start_training(self) -> None:
        from studio.train import start_training

        if self.project.path:
            save_project(self.project)
            self.studio.dirty = False
        self.loss_points.clear()
        self.eval_points.clear()
        self.process = start_training(self.project)
        self.studio.set_run(self.process.run_dir)
        self.studio.set_busy(True)
        self.thread = QThread(self)
        self.watcher = TrainingWatcher(self.process)
        self.watcher.moveToThread(self.thread)
        self.thread.started.connect(self.watcher.run)
        self.watcher.event.connect(self.on_event)
        self.watcher.finished.connect(self.thread.quit)
        self.watcher.finished.connect(self._training_ended)
        self.thread.start()
        self.start_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.status.setText("Starting the training process…")

    def stop_training(self) -> None:
        if self.process:
            self.process.request_stop()
            self.status.setText("Stopping after this step and saving…")

    def on_event(self, event: dict) -> None:
        kind = event["type"]
        if kind == "progress":
            self.progress.setValue(int(100 * event.get("fraction", 0)))
            eta = event.get("eta_s")
            self.status.setText(f"Step {event['step']} of {event['total_steps']}" +
                                (f" — about {eta:.0f} s left" if eta is not None else ""))
        elif kind == "metrics":
            self.loss_points.append((event["step"], event["loss"]))
            self.loss_curve.setData(*zip(*self.loss_points))
        elif kind == "eval":
            self.eval_points.append((event["step"], event["eval_loss"]))
            self.eval_curve.setData(*zip(*self.eval_points))
        elif kind == "done":
            self.status.setText("Stopped and saved; it can be resumed." if event.get("stopped")
                                else f"Finished. Final loss {event.get('final_loss') or 0:.3f}.")
        elif kind == "error":
            self.status.setText(event["message"])
            QMessageBox.warning(self, "Training stopped", event["message"])

    def _training_ended(self) -> None:
        self.start_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        self.studio.set_busy(False)
        self.studio.set_run(self.process.run_dir)

    def confirm_close(self) -> bool:
        if self.process and self.process.returncode is None:
            answer = QMessageBox.question(self, "Training is running", "Stop training and close?")
            return answer == QMessageBox.StandardButton.Yes
        return True

    def shutdown(self) -> None:
        if self.process and self.process.returncode is None:
            self.process.kill()
        if self.thread is not None:
            self.thread.quit()
            self.thread.wait(5000)
