"""Stage 4: training in the worker process, followed live.

The worker is its own process (studio.train.launch); a Task reads its event stream and hands each event to
the GUI thread, which only appends numbers and log lines; the charts and the log redraw on a timer. How a run
ended and what Resume would do are read from its events by studio.train.state."""
from __future__ import annotations

import os
import time
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (QComboBox, QFrame, QHBoxLayout, QLabel, QMessageBox, QPlainTextEdit,
                               QProgressBar, QPushButton, QSplitter, QVBoxLayout)

from studio.errors import StudioError
from studio.train.launch import unexpected_end
from studio.train.runs import EVENTS_FILE, latest_checkpoint, list_runs
from studio.train.state import RunState, read_run, runs_worth_listing
from ui.pages import Page
from ui.tasks import Task
from ui.theme import role_label
from ui.widgets.plots import TrainingPlots

LOG_LINES = 3000  # the log view keeps the newest lines; events.jsonl keeps them all
WORKER_NICENESS = 10  # below the window's priority, above idle work
STOP_WAIT_S = 30  # on close: how long a stop-and-save may take before the worker is ended hard


def lower_priority(pid: int) -> None:
    """Let the worker yield the CPU to the window: on a machine with few cores, a worker at equal priority
    starves the GUI thread for hundreds of milliseconds at a time. Set right after the start, before the
    worker makes its compute threads (they inherit it); the GPU's speed is not affected."""
    try:
        os.setpriority(os.PRIO_PROCESS, pid, WORKER_NICENESS)
    except (AttributeError, OSError):  # Windows has no nice levels; a process that already ended
        pass


def clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class TrainPage(Page):
    title = "Train"
    icon = "train.svg"

    def __init__(self, studio):
        super().__init__(studio)
        self.process = None
        self.watching: Task | None = None  # reads the worker's events until it ends
        self.final_event: dict | None = None
        self._killed = False  # "Stop now" ended the process: no done event is expected
        self.started_at = 0.0
        self.state: RunState | None = None
        self._pending_log: list[str] = []
        self._picking = False
        self._states: dict[str, tuple] = {}

        self.start_button = self._button("Start training", "Train a new run with the project's settings (Ctrl+R)",
                                         self.start_training, "Ctrl+R")
        self.stop_button = self._button("Stop and save", "Finish the current step, save a checkpoint and the "
                                        "weights so far; the run can be resumed or exported", self.stop_training)
        self.kill_button = self._button("Stop now", "End the training process at once; only the last periodic "
                                        "checkpoint is kept", self.stop_now)
        self.resume_button = self._button("Resume", "Continue the chosen run from its last checkpoint",
                                          self.resume_training)
        self.runs = QComboBox()
        self.runs.setMinimumWidth(300)
        self.runs.setToolTip("Runs of this project (newest first): pick one to see its charts and log")
        self.runs.currentIndexChanged.connect(self._run_picked)
        top = QHBoxLayout()
        for button in (self.start_button, self.stop_button, self.kill_button, self.resume_button):
            top.addWidget(button)
        top.addStretch(1)
        top.addWidget(QLabel("Run:"))
        top.addWidget(self.runs)

        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.status = QLabel("Ready to train.")
        self.timing = role_label("hint", "")
        status_row = QHBoxLayout()
        status_row.addWidget(self.status, 1)
        status_row.addWidget(self.timing)

        self.problem = QFrame()
        self.problem.setFrameShape(QFrame.Shape.StyledPanel)
        self.problem_text = role_label("bad")
        self.problem_text.setWordWrap(True)
        self.problem_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.fix_button = QPushButton("Apply the fix")
        self.fix_button.clicked.connect(self.apply_fix)
        problem_row = QHBoxLayout(self.problem)
        problem_row.addWidget(self.problem_text, 1)
        problem_row.addWidget(self.fix_button, 0, Qt.AlignmentFlag.AlignTop)
        self.problem.hide()
        self.fix: dict | None = None
        self.problem_event: dict | None = None  # the problem shown, to say again when the view changes

        self.plots = TrainingPlots()
        self.plots.set_expert(studio.expert)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(LOG_LINES)
        self.log.setPlaceholderText("The training log appears here.")
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.plots)
        splitter.addWidget(self.log)
        splitter.setStretchFactor(0, 4)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([480, 120])

        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 16, 16, 16)
        layout.setSpacing(8)
        heading = role_label("heading", "Train")
        layout.addWidget(heading)
        layout.addLayout(top)
        layout.addWidget(self.progress)
        layout.addLayout(status_row)
        layout.addWidget(self.problem)
        layout.addWidget(splitter, 1)

        self.log_timer = QTimer(self)  # log lines are appended in batches, like the charts
        self.log_timer.setInterval(100)
        self.log_timer.timeout.connect(self._flush_log)
        self.log_timer.start()
        studio.run_changed.connect(self._follow_run)
        studio.busy_changed.connect(lambda busy: self._update_buttons())
        self._update_buttons()

    def _button(self, text, tip, slot, shortcut=None) -> QPushButton:
        button = QPushButton(text)
        button.setToolTip(tip)
        button.clicked.connect(slot)
        if shortcut:
            button.setShortcut(QKeySequence(shortcut))
        return button

    # --- page protocol --------------------------------------------------------------------------------
    def load_project(self) -> None:
        self._fill_runs()

    def view_changed(self, expert: bool) -> None:
        self.plots.set_expert(expert)
        if self.problem_event is not None and not self.problem.isHidden() and self.fix:  # say the fix the view's way
            self._show_problem(self.problem_event)

    def readiness(self) -> tuple[bool, str]:
        if self.running:
            return False, "training…"
        if self.state is None:
            return False, "not trained yet"
        return self.state.finished or self.state.stopped, self.state.describe()

    @property
    def running(self) -> bool:
        return self.process is not None and self.watching is not None and self.watching.is_running()

    # --- the run picker -------------------------------------------------------------------------------
    def _fill_runs(self) -> None:
        self._picking = True
        self.runs.clear()
        # Attempts that failed before their first step are left out (their folders stay): see runs_worth_listing.
        for run_dir in runs_worth_listing(list_runs(self.project), self._read, self.studio.run_dir):
            self.runs.addItem(f"{run_dir.name} — {self._read(run_dir).describe()}", str(run_dir))
        if self.runs.count() == 0:
            self.runs.addItem("(no runs yet)", None)
        self._picking = False
        self._select(self.studio.run_dir)

    def _select(self, run_dir) -> None:
        index = self.runs.findData(str(run_dir)) if run_dir else -1
        self._picking = True
        self.runs.setCurrentIndex(max(0, index))
        self._picking = False
        self._show_run(run_dir if index >= 0 else None)

    def _read(self, run_dir) -> RunState:
        """read_run, remembered until the run's events.jsonl changes (the picker re-lists often)."""
        events = Path(run_dir) / EVENTS_FILE
        stamp = (events.stat().st_mtime_ns, latest_checkpoint(run_dir)) if events.is_file() else None
        cached = self._states.get(str(run_dir))
        if cached is None or cached[0] != stamp:
            cached = self._states[str(run_dir)] = (stamp, read_run(run_dir))
        return cached[1]

    def _run_picked(self) -> None:
        if self._picking or self.running:
            return
        data = self.runs.currentData()
        self.studio.set_run(data)

    def _follow_run(self, run_dir) -> None:
        """Another page (or this one) chose a run: show it, unless a live run is being drawn."""
        if not self.running:
            self._fill_runs()

    def _show_run(self, run_dir) -> None:
        """Re-plot a past run from its events.jsonl."""
        self.plots.clear()
        self.log.clear()
        self._pending_log.clear()
        self.problem.hide()
        self.state = self._read(run_dir) if run_dir else None
        if self.state is None:
            self.progress.setValue(0)
            self.status.setText("Ready to train. Start uses the settings of the Model, Data and Method pages.")
            self.timing.setText("")
        else:
            for event in self.state.events:
                self._take(event)
            self.status.setText(self.state.summary())
            events = self.state.events
            if len(events) > 1:
                self.timing.setText(f"took {clock(events[-1]['time'] - events[0]['time'])}")
            if self.state.error:
                self._show_problem(self.state.error)
        self._update_buttons()
        self.studio.readiness_changed.emit()

    # --- starting and stopping ------------------------------------------------------------------------
    def start_training(self) -> None:
        from studio.plan import start_question
        from studio.train import start_training

        question = start_question(self.studio.plan.verdict)  # the planner says it will not fit: ask first
        no, yes = QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes
        if question and QMessageBox.question(self, "Start a run that does not fit?", question, yes | no, no) != yes:
            return
        try:
            if self.project.path:
                self.studio.save()
            process = start_training(self.project)
        except StudioError as error:
            self._show_problem({"message": str(error)})
            return
        self._follow(process, fresh=True)

    def resume_training(self) -> None:
        from studio.train import start_training

        if self.state is None or not self.state.resumable:
            return
        self._follow(start_training(run_dir=self.state.run_dir, resume=True), fresh=False)

    def _follow(self, process, fresh: bool) -> None:
        self.process = process
        self._killed = False
        lower_priority(process.process.pid)
        self.final_event = None
        self.started_at = time.time()
        self.problem.hide()
        if fresh:
            self.plots.clear()
            self.log.clear()
        self._pending_log.append(f"— {'Started' if fresh else 'Resumed'} {process.run_dir} —")
        self.watching = Task(lambda progress, cancelled: process.events(), self, stream=True,
                             on_item=self.on_event, on_finish=self._training_ended).start()
        self.status.setText("Starting the training process (loading the libraries takes a few seconds)…")
        self.studio.set_busy(True)
        if fresh:
            self._picking = True
            self.runs.insertItem(0, f"{process.run_dir.name} — training", str(process.run_dir))
            self.runs.setCurrentIndex(0)
            self._picking = False
        self._update_buttons()
        self.studio.set_run(process.run_dir)  # Test and Export learn of the new run (this page ignores it now)

    def stop_training(self) -> None:
        if self.running:
            self.process.request_stop()
            self.status.setText("Stopping after this step and saving a checkpoint…")
            self.stop_button.setEnabled(False)

    def stop_now(self) -> None:
        if self.running:
            self.status.setText("Ending the training process…")
            self._killed = True
            self.process.kill()

    # --- events ---------------------------------------------------------------------------------------
    def on_event(self, event: dict) -> None:
        self._take(event)
        kind = event["type"]
        if kind == "progress":
            elapsed = time.time() - self.started_at
            eta = event.get("eta_s")
            left = f" · about {clock(eta)} left" if eta is not None else ""
            self.timing.setText(f"elapsed {clock(elapsed)}{left}")
        elif kind == "done":
            self.final_event = event
        elif kind == "error":  # shown at once, with its fix; the process ends right after
            self.final_event = event
            self._show_problem(event)

    def _take(self, event: dict) -> None:
        """Numbers to the charts, words to the log, the step to the progress bar: cheap, no drawing."""
        self.plots.add_event(event)
        kind = event.get("type")
        if kind == "progress":
            total = event.get("total_steps") or 0
            self.progress.setValue(int(100 * (event.get("fraction") or 0)))
            self.status.setText(f"Step {event.get('step')} of {total}")
        elif kind == "log":
            message = event.get("message", "")
            if not (event.get("raw") and message.startswith("{'")):  # the Trainer echoing its metrics: shown above
                self._pending_log.append(message)
        elif kind == "metrics":
            self._pending_log.append(f"step {event['step']}: loss {event['loss']:.4f}")
        elif kind == "eval":
            self._pending_log.append(f"step {event['step']}: eval loss {event['eval_loss']:.4f}")
        elif kind == "checkpoint":
            self._pending_log.append(f"step {event['step']}: checkpoint saved")
        elif kind == "error":
            self._pending_log.append(f"ERROR: {event.get('message')}")
            if event.get("traceback"):
                self._pending_log.append(event["traceback"])

    def _flush_log(self) -> None:
        if self._pending_log:
            self.log.appendPlainText("\n".join(self._pending_log))
            self._pending_log.clear()

    def _training_ended(self) -> None:
        process, final = self.process, self.final_event
        self.watching = None
        self.studio.set_busy(False)
        if final is None and not self._killed:  # no done/error event and not stopped by us: it crashed
            self._show_problem(unexpected_end(process))
        self.process = None
        self._fill_runs_after(process.run_dir)
        self.status.setText(self.state.summary() if self.state else "Ended.")
        self._update_buttons()

    def _fill_runs_after(self, run_dir) -> None:
        problem_visible, problem = self.problem.isVisible(), (self.problem_text.text(), self.fix)
        self.studio.set_run(run_dir)  # re-reads the run: picker label, charts, buttons; Test/Export follow
        if problem_visible and not self.problem.isVisible():  # a kill leaves no error event to re-read
            self.problem_text.setText(problem[0])
            self.fix = problem[1]
            self.fix_button.setVisible(bool(self.fix))
            self.problem.show()

    # --- problems and fixes ---------------------------------------------------------------------------
    def _show_problem(self, event: dict) -> None:
        self.problem_event = event
        self.fix = event.get("fix") or None
        text = event.get("message", "Training stopped.")
        if self.fix and self.studio.expert:  # Simple view: the message says the fix in words already
            text += "\nApply the fix changes: " + ", ".join(f"{k} → {v}" for k, v in self.fix.items()) + "."
        elif event.get("details"):
            text += "\n" + event["details"].strip().splitlines()[-1]
        self.problem_text.setText(text)
        self.fix_button.setVisible(bool(self.fix))
        self.problem.show()

    def apply_fix(self) -> None:
        """Write the error's suggested change into the project, so the next Start uses it."""
        if not self.fix:
            return
        try:
            changes = self.studio.apply(self.fix)  # the other pages' controls follow
        except StudioError as error:
            self.problem_text.setText(str(error))
            return
        self.fix = None
        self.fix_button.setVisible(False)
        self.problem_text.setText(f"Applied to the project: {changes}. Start training again to use it.")

    # --- buttons, closing -----------------------------------------------------------------------------
    def _update_buttons(self) -> None:
        running = self.running
        idle = not running and not self.studio.busy  # an export also makes the app busy
        self.start_button.setEnabled(idle)
        self.stop_button.setEnabled(running)
        self.kill_button.setEnabled(running)
        self.resume_button.setEnabled(idle and self.state is not None and self.state.resumable)
        self.runs.setEnabled(not running)

    def confirm_close(self) -> bool:
        if not self.running:
            return True
        answer = QMessageBox.question(
            self, "Training is running", "Training is still running. Stop it, save a checkpoint (so it can be "
            "resumed) and close?", QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel)
        return answer == QMessageBox.StandardButton.Yes

    def shutdown(self) -> None:
        """Ask the worker to stop and save, and return at once: it is its own process and saves on its own
        (the STOP file; also when this app has ended and nobody reads its output), so the window closes
        without waiting. The window stays alive, hidden, while the run's last events arrive; a save that
        takes longer than STOP_WAIT_S ends the worker, keeping its last checkpoint."""
        process = self.process
        if process is not None and process.returncode is None:
            process.request_stop()
            self.status.setText("Saving your training so it can be resumed…")
            QTimer.singleShot(STOP_WAIT_S * 1000, lambda: process.returncode is None and process.kill())
