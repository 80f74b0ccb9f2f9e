"""The desktop app's first window: the stage list, the project's method with a live VRAM estimate, and a
training page that runs the worker process and plots its loss. Only the GUI lives here; every number comes
from `studio`."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from PySide6.QtCore import QObject, QThread, Signal
from PySide6.QtWidgets import (QApplication, QComboBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel,
                               QListWidget, QMainWindow, QMessageBox, QProgressBar, QPushButton, QSpinBox,
                               QStackedWidget, QVBoxLayout, QWidget)

from studio.project import METHODS, Project, load_project, save_project

STAGES = ["Model", "Data", "Method", "Train"]


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


class MainWindow(QMainWindow):
    def __init__(self, project: Project):
        super().__init__()
        self.project = project
        self.process = None
        self.setWindowTitle(f"Fine-Tune Studio — {project.name}")
        self.resize(1000, 640)
        self.stages = QListWidget()
        self.stages.addItems(STAGES)
        self.stages.setFixedWidth(160)
        self.pages = QStackedWidget()
        for build in (self._model_page, self._data_page, self._method_page, self._train_page):
            self.pages.addWidget(build())
        self.stages.currentRowChanged.connect(self.pages.setCurrentIndex)
        self.stages.setCurrentRow(0)
        body = QWidget()
        layout = QHBoxLayout(body)
        layout.addWidget(self.stages)
        layout.addWidget(self.pages, 1)
        self.setCentralWidget(body)
        self._update_estimate()

    def _model_page(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        form.addRow("Base model:", QLabel(self.project.model.name))
        return page

    def _data_page(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        self.data_label = QLabel(self.project.data.train_file or "(no file chosen)")
        choose = QPushButton("Choose a data file…")
        choose.clicked.connect(self._choose_data)
        form.addRow("Training data:", self.data_label)
        form.addRow("", choose)
        return page

    def _method_page(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        self.method = QComboBox()
        self.method.addItems(METHODS)
        self.method.setCurrentText(self.project.method.method)
        self.rank = QSpinBox(minimum=1, maximum=1024, value=self.project.method.rank)
        self.rank.setToolTip("LoRA rank: the size of the trained matrices. Raise it before giving up on LoRA.")
        self.batch = QSpinBox(minimum=1, maximum=512, value=self.project.train.batch_size)
        self.cutoff = QSpinBox(minimum=16, maximum=131072, value=self.project.train.max_seq_len, singleStep=128)
        self.cutoff.setToolTip("Sequence-length cutoff: longer examples are cut to this many tokens.")
        self.estimate_label = QLabel()
        self.estimate_label.setWordWrap(True)
        for label, widget in (("Method:", self.method), ("LoRA rank:", self.rank), ("Batch size:", self.batch),
                              ("Cutoff (tokens):", self.cutoff), ("GPU memory:", self.estimate_label)):
            form.addRow(label, widget)
        for widget in (self.rank, self.batch, self.cutoff):
            widget.valueChanged.connect(self._update_estimate)
        self.method.currentTextChanged.connect(self._update_estimate)
        return page

    def _train_page(self) -> QWidget:
        import pyqtgraph as pg

        page = QWidget()
        layout = QVBoxLayout(page)
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
        return page

    def _sync_project(self) -> None:
        self.project.method.method = self.method.currentText()
        self.project.method.rank = self.rank.value()
        self.project.method.alpha = 2 * self.rank.value()
        self.project.train.batch_size = self.batch.value()
        self.project.train.max_seq_len = self.cutoff.value()

    def _update_estimate(self) -> None:
        from studio.plan import detect_gpu, estimate, verdict

        self._sync_project()
        from studio.models import config_if_ready

        config = config_if_ready(self.project.model.name)
        if config is None:
            self.estimate_label.setText("The estimate appears once the base model is on this computer.")
            return
        result = estimate(config, self.project)
        gpu = self._gpu if hasattr(self, "_gpu") else detect_gpu()
        self._gpu = gpu
        self.estimate_label.setText(f"{result.total_bytes / 2**30:.2f} GB estimated. {verdict(result, gpu).sentence}")

    def _choose_data(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Training data", "", "Data (*.jsonl *.json *.csv *.tsv *.parquet *.txt)")
        if path:
            self.project.data.train_file = path
            self.data_label.setText(path)

    def start_training(self) -> None:
        from studio.train import start_training

        self._sync_project()
        if self.project.path:
            save_project(self.project)
        self.loss_points.clear()
        self.eval_points.clear()
        self.process = start_training(self.project)
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

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if self.process and self.process.returncode is None:
            answer = QMessageBox.question(self, "Training is running", "Stop training and close?")
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
            self.process.kill()
            self.thread.quit()
            self.thread.wait(5000)
        event.accept()


def main(project_path: str | None = None) -> int:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    if project_path:
        project = load_project(project_path)
    else:
        from studio.demo import SAMPLE
        project = Project(name="my-model")
        project.data.train_file = str(SAMPLE)
    window = MainWindow(project)
    window.show()
    return app.exec()
