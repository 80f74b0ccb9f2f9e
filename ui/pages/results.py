"""Stage 5: did the run learn your task, and did it keep what the base model knew? (studio.evaluate)

A stage of its own, right after Train, rather than part of the Test page: the check runs by itself when
training ends, it is the answer to "did it work?" that decides what to do next (train again with the advice,
or export), and its tables need the page's whole width; the Test page stays the place to chat with the models.
Reading: a verdict card on top (headline, the two reasons, advice with an Apply button), then tabs with every
held-out prompt, the general check and all runs of the project. Colour only marks what is better or worse
than the base model. Checking on demand runs on a background Task with progress and Cancel.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QFrame, QHBoxLayout, QHeaderView, QLabel,
                               QMessageBox, QProgressBar, QPushButton, QTableWidget, QTableWidgetItem, QTabWidget,
                               QVBoxLayout, QWidget)

from studio.errors import StudioError
from ui.pages import Page
from ui.tasks import Task
from ui.theme import role_label

GOOD, BAD = QColor("#2bb673"), QColor("#e74c3c")
EXPERT_COLUMNS = ("rank", "alpha", "learning_rate", "peak_gb", "heldout_loss")  # "All runs" in Expert view only
CELL_CHARS = 140  # an answer that runs to the token limit would make its row a page tall


def table(headers: list[str]) -> QTableWidget:
    view = QTableWidget(0, len(headers))
    view.setHorizontalHeaderLabels(headers)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setWordWrap(True)
    view.verticalHeader().setVisible(False)
    # Wrapped rows get their height for the columns' final widths, not for the widths at filling time.
    view.horizontalHeader().sectionResized.connect(lambda *_: QTimer.singleShot(0, view.resizeRowsToContents))
    return view


def fit_height(view: QTableWidget) -> None:
    """A short table as tall as its rows, so nothing in it needs scrolling."""
    view.resizeRowsToContents()
    rows = sum(view.rowHeight(r) for r in range(view.rowCount()))
    view.setFixedHeight(view.horizontalHeader().height() + rows + 2 * view.frameWidth())


def fill(view: QTableWidget, rows: list[list], colours: dict[tuple[int, int], QColor] | None = None) -> None:
    """Rows of text; long answers are cut at CELL_CHARS (the whole text is the cell's tooltip)."""
    view.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            text = " ".join(str(value).split())
            item = QTableWidgetItem(text if len(text) <= CELL_CHARS else text[:CELL_CHARS - 1] + "…")
            item.setToolTip(str(value))
            item.setTextAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
            if colours and (r, c) in colours:
                item.setForeground(QBrush(colours[(r, c)]))
                font = QFont()
                font.setBold(True)
                item.setFont(font)
            view.setItem(r, c, item)


class ResultsPage(Page):
    title = "Results"
    icon = "results.svg"

    def __init__(self, studio):
        super().__init__(studio)
        self.report: dict | None = None
        self.gguf_report: dict | None = None
        self.task: Task | None = None
        self.fix: dict | None = None

        self.run_label = role_label("hint", "")
        self.check_button = QPushButton("Check this run")
        self.check_button.setToolTip("Ask the trained model and the base model your held-out prompts and the general "
                                     "questions, and compare (about a minute for a small model on a CPU)")
        self.check_button.clicked.connect(lambda: self.start_check(gguf=False))
        self.gguf_button = QPushButton("Check the exported file")
        self.gguf_button.setToolTip("The same check on the GGUF the Modelfile uses, in llama.cpp: what you take away")
        self.gguf_button.clicked.connect(lambda: self.start_check(gguf=True))
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.auto = QCheckBox("Check every run when training ends")
        self.auto.setToolTip("Saved in the project as [evaluate] after_training")
        self.auto.toggled.connect(self._auto_toggled)
        self.thorough = QCheckBox("Thorough")
        self.thorough.setToolTip("Ask all the general questions and read all the prose instead of the quick check's "
                                 "fixed 3 in 5: firmer when a verdict is close, about twice as long. Saved in the "
                                 "project as [evaluate] check; compare runs checked the same way")
        self.thorough.toggled.connect(self._thorough_toggled)
        top = QHBoxLayout()
        top.addWidget(self.run_label, 1)
        for widget in (self.auto, self.thorough, self.check_button, self.gguf_button, self.cancel_button):
            top.addWidget(widget)
        self.progress = QProgressBar()
        self.status = role_label("hint", "")
        self.status.setWordWrap(True)

        self.card = QFrame()
        self.card.setFrameShape(QFrame.Shape.StyledPanel)
        self.headline = role_label("heading", "")
        self.headline.setWordWrap(True)
        self.learned = QLabel("")
        self.kept = QLabel("")
        self.advice = QLabel("")
        self.export_line = role_label("hint", "")
        for label in (self.learned, self.kept, self.advice, self.export_line):
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.apply_button = QPushButton("Apply")
        self.apply_button.setToolTip("Write the first piece of advice into the project; the next training run uses it")
        self.apply_button.clicked.connect(self.apply_fix)
        card = QVBoxLayout(self.card)
        card.addWidget(self.headline)
        card.addWidget(self.learned)
        card.addWidget(self.kept)
        advice_row = QHBoxLayout()
        advice_row.addWidget(self.advice, 1)
        advice_row.addWidget(self.apply_button, 0, Qt.AlignmentFlag.AlignTop)
        card.addLayout(advice_row)
        card.addWidget(self.export_line)

        self.examples = table(["prompt", "your answer", "base model", "fine-tuned", "score: base → fine-tuned"])
        self.general = table(["", "base model", "fine-tuned"])
        self.lost = table(["question", "base model", "fine-tuned now"])
        general_tab = QWidget()
        general_layout = QVBoxLayout(general_tab)
        general_layout.setContentsMargins(0, 4, 0, 0)
        self.general_note = role_label("hint", "")
        self.general_note.setWordWrap(True)
        self.lost_note = QLabel("")
        general_layout.addWidget(self.general_note)
        general_layout.addWidget(self.general)
        general_layout.addWidget(self.lost_note)
        general_layout.addWidget(self.lost, 1)
        from studio.evaluate.compare import COLUMNS

        self.runs = table([label for _, label in COLUMNS])
        self.runs.setToolTip("Double-click a run to show its report")
        self.runs.cellDoubleClicked.connect(self._run_picked)
        self.runs_rows: list[dict] = []
        self.tabs = QTabWidget()
        self.tabs.addTab(self.examples, "Held-out prompts")
        self.tabs.addTab(general_tab, "General knowledge")
        self.tabs.addTab(self.runs, "All runs")
        for view in (self.examples, self.lost):
            for column in range(view.columnCount()):
                view.horizontalHeader().setSectionResizeMode(column, QHeaderView.ResizeMode.Stretch)
        self.examples.horizontalHeader().setSectionResizeMode(4, QHeaderView.ResizeMode.ResizeToContents)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 16, 16, 16)
        layout.setSpacing(8)
        layout.addWidget(role_label("heading", "Results"))
        layout.addLayout(top)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.card)
        layout.addWidget(self.tabs, 1)
        self.expert_only(self.thorough)  # Simple: the quick check (the project keeps its choice)
        self.view_changed(studio.expert)
        studio.run_changed.connect(lambda run_dir: self.show_run())
        studio.busy_changed.connect(lambda busy: self._update_buttons())
        self.load_project()

    # --- page protocol --------------------------------------------------------------------------------
    def load_project(self) -> None:
        self.auto.blockSignals(True)
        self.auto.setChecked(self.project.evaluate.after_training)
        self.auto.blockSignals(False)
        self.thorough.blockSignals(True)
        self.thorough.setChecked(self.project.evaluate.check == "thorough")
        self.thorough.blockSignals(False)
        self.show_run()

    def view_changed(self, expert: bool) -> None:
        from studio.evaluate.compare import COLUMNS

        for column, (key, _) in enumerate(COLUMNS):
            self.runs.setColumnHidden(column, key in EXPERT_COLUMNS and not expert)
        if self.report is not None:
            self._fill_general(self.report)

    def readiness(self) -> tuple[bool, str]:
        if self.checking:
            return False, "checking…"
        if self.report is None:
            return False, "not checked yet"
        v = self.report["verdict"]
        return True, f"{v['learned']} · {v['kept']}"

    @property
    def checking(self) -> bool:
        return self.task is not None and self.task.is_running()

    def _auto_toggled(self, on: bool) -> None:
        self.studio.apply({"evaluate.after_training": on})

    def _thorough_toggled(self, on: bool) -> None:
        self.studio.apply({"evaluate.check": "thorough" if on else "quick"})

    # --- showing a run's report -------------------------------------------------------------------------
    def show_run(self) -> None:
        from studio.evaluate.report import gguf_reports, read_report, report_path

        run_dir = self.studio.run_dir
        self.report = read_report(report_path(run_dir)) if run_dir else None
        ggufs = gguf_reports(run_dir) if run_dir else []
        self.gguf_report = ggufs[-1] if ggufs else None
        if run_dir is None:
            self.run_label.setText("No run yet: train one on the Train page; it is checked when training ends.")
        else:
            self.run_label.setText(f"Run {Path(run_dir).name}")
        self._show_report()
        self._load_runs()
        self._update_buttons()
        self.studio.readiness_changed.emit()

    def _show_report(self) -> None:
        report = self.report
        self.card.setVisible(report is not None)
        self.tabs.setTabEnabled(0, bool(report and report.get("task")))
        self.tabs.setTabEnabled(1, report is not None)
        if report is None:
            self.examples.setRowCount(0)
            self.general.setRowCount(0)
            self.lost.setRowCount(0)
            busy = self.studio.busy and not self.checking
            self.status.setText("Training is running: the run is checked when it ends." if busy else
                                "This run has not been checked yet: press “Check this run”." if self.studio.run_dir
                                else "")
            return
        v = report["verdict"]
        self.headline.setText(v["headline"])
        self.headline.setStyleSheet(f"color: {({'good': GOOD, 'bad': BAD}.get(v['tone'], QColor('#e0a800'))).name()};")
        self.learned.setText(f"<b>Your task — {v['learned']}.</b> {v['learned_why']}")
        self.kept.setText(f"<b>General knowledge — {v['kept']}.</b> {v['kept_why']}")
        tips = v["advice"]
        self.advice.setText("<b>Next time:</b> " + " ".join(f"{i + 1}. {t['say']}" for i, t in enumerate(tips))
                            if tips else "")
        self.fix = v.get("fix") if not self._already_applied(v.get("fix")) else None
        self.apply_button.setVisible(bool(self.fix))
        if self.fix:
            self.apply_button.setText("Apply: " + ", ".join(f"{k.split('.')[-1].replace('_', ' ')} → {val:g}"
                                                            if isinstance(val, float) else
                                                            f"{k.split('.')[-1].replace('_', ' ')} → {val}"
                                                            for k, val in self.fix.items()))
        from studio.evaluate.report import check_words, export_line

        self.export_line.setText(f"Exported file ({Path(self.gguf_report['subject']['path']).name}): "
                                 f"{export_line(self.gguf_report)}" if self.gguf_report else
                                 f"Checked {report['subject']['label']} against the base model in "
                                 f"{report['seconds']['total']:.0f} s ({report['device']}; "
                                 f"{check_words(report['general'])}).")
        self.status.setText("")
        self._fill_examples(report)
        self._fill_general(report)

    def _already_applied(self, fix: dict | None) -> bool:
        """True when the project already holds every value of `fix` (applied, or set by hand since)."""
        if not fix:
            return False
        project = self.project
        return all(getattr(getattr(project, key.split(".")[0]), key.split(".")[1], None) == value
                   for key, value in fix.items())

    def _fill_examples(self, report: dict) -> None:
        task = report.get("task")
        rows, colours = [], {}
        for r, row in enumerate(task["rows"] if task else []):
            rows.append([row["prompt"], row["reference"], row["base"], row["tuned"],
                         f"{row['base_score']:.0f} → {row['tuned_score']:.0f}"])
            if row["closer"]:
                colours[(r, 4)] = GOOD
            elif row["tuned_score"] < row["base_score"] - task["closer_margin"]:
                colours[(r, 4)] = BAD
        fill(self.examples, rows, colours)
        self.examples.resizeRowsToContents()
        n = task["examples"] if task else 0
        self.tabs.setTabText(0, f"Held-out prompts ({task['closer']} of {n} closer)" if n else "Held-out prompts")
        if task:
            self.examples.setToolTip(f"Every held-out prompt of {task['source']}, none picked. Score: {task['metric']}, "
                                     "0-100, how close each answer is to yours; green: closer than the base model, "
                                     "red: further away.")

    def _fill_general(self, report: dict) -> None:
        from studio.evaluate import verdict
        from studio.evaluate.report import check_words

        g = report["general"]
        b, t = g["base"], g["tuned"]
        rows = [[f"{c} ({n} questions)", f"{b['categories'][c]:.0%}", f"{t['categories'][c]:.0%}"]
                for c, n in g["counts"].items()]
        rows += [["all questions", f"{b['correct']} right ({b['accuracy']:.0%})", f"{t['correct']} right ({t['accuracy']:.0%})"],
                 ["ends its answer by itself", f"{b['stopped']:.0%}", f"{t['stopped']:.0%}"],
                 ["perplexity on everyday prose (lower is better)" if self.studio.expert else
                  "how surprised it is by everyday text (lower is better)", f"{b['prose_perplexity']:.2f}",
                  f"{t['prose_perplexity']:.2f}"]]
        colours = {}
        n = len(g["counts"])
        drops = [b["accuracy"] - t["accuracy"] > verdict.SOME_ACCURACY_DROP,
                 b["stopped"] - t["stopped"] > verdict.SOME_STOP_DROP,
                 t["prose_perplexity"] / b["prose_perplexity"] - 1 > verdict.SOME_PERPLEXITY_RISE]
        for k, dropped in enumerate(drops):
            if dropped:
                colours[(n + k, 2)] = BAD
        fill(self.general, rows, colours)
        self.general.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        fit_height(self.general)
        self.general_note.setText(f"{check_words(g).capitalize()} shipped with the app (facts, arithmetic, common "
                                  f"sense, simple instructions), each answered in at most {g['answer_tokens']} tokens "
                                  "by both models. Red: worse than the base beyond the verdict's threshold.")
        by_id = {r["id"]: r for r in g["rows"]}
        fill(self.lost, [[by_id[q]["question"], by_id[q]["base"], by_id[q]["tuned"]] for q in g["lost"]])
        self.lost_note.setText(f"<b>{len(g['lost'])} questions the base model answered right and the fine-tuned "
                               f"model now misses</b> ({len(g['gained'])} the other way round):")
        self.lost.resizeRowsToContents()

    def _load_runs(self) -> None:
        project = self.project

        def work(progress, cancelled):
            from studio.evaluate.compare import runs_table
            return runs_table(project)

        self._runs_task = Task(work, self, on_success=self._show_runs).start()

    def _show_runs(self, rows: list[dict]) -> None:
        from studio.evaluate.compare import COLUMNS, cell

        self.runs_rows = list(reversed(rows))  # newest first, like the Train page's picker
        colours = {}
        current = Path(self.studio.run_dir).name if self.studio.run_dir else None
        for r, row in enumerate(self.runs_rows):
            tone = {"kept": None, "forgot some": BAD, "forgot a lot": BAD}.get(row["kept"])
            if tone:
                colours[(r, len(COLUMNS) - 1)] = tone
            if row["learned"] == "learned":
                colours[(r, 9)] = GOOD
        fill(self.runs, [[("▶ " if row["run"] == current else "") + cell(row, key) if key == "run" else cell(row, key)
                          for key, _ in COLUMNS] for row in self.runs_rows], colours)
        self.runs.resizeColumnsToContents()
        self.tabs.setTabText(2, f"All runs ({len(rows)})")

    def _run_picked(self, row: int, column: int) -> None:
        from studio.train.runs import runs_root

        if 0 <= row < len(self.runs_rows) and not self.studio.busy:
            self.studio.set_run(runs_root(self.project) / self.runs_rows[row]["run"])

    # --- checking on demand -----------------------------------------------------------------------------
    def start_check(self, gguf: bool) -> None:
        run_dir = self.studio.run_dir
        if run_dir is None or self.checking:
            return
        target = self._gguf_file(run_dir) if gguf else None
        if gguf and target is None:
            return

        check = self.project.evaluate.check

        def work(progress, cancelled):
            from studio.evaluate import evaluate_run
            return evaluate_run(run_dir, target, progress, cancelled, check)

        self.task = Task(work, self, needs_ml=True, on_progress=self._progress,
                         on_success=lambda report: self.show_run(), on_failure=self._failed,
                         on_cancel=self.status.setText,  # the core's sentence: nothing was written
                         on_finish=self._update_buttons)
        self.progress.setValue(0)
        self.status.setText("Loading the models…")
        self.task.start()
        self._update_buttons()

    def _gguf_file(self, run_dir) -> Path | None:
        from studio.chat import shipped_gguf

        return shipped_gguf(run_dir, self.project)

    def _progress(self, message: str, fraction: float) -> None:
        self.progress.setValue(int(100 * fraction))
        self.status.setText(message)

    def _failed(self, message: str) -> None:
        self.status.setText(message)

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.status.setText("Cancelling after the current batch…")

    def apply_fix(self) -> None:
        if not self.fix:
            return
        try:
            changes = self.studio.apply(self.fix)
        except StudioError as error:
            QMessageBox.warning(self, "Cannot apply the advice", str(error))
            return
        self.fix = None
        self.apply_button.setVisible(False)
        self.status.setText(f"Applied to the project: {changes}. Train again to use it.")

    def _update_buttons(self) -> None:
        busy = self.studio.busy or self.checking
        has_run = self.studio.run_dir is not None
        self.check_button.setEnabled(has_run and not busy)
        self.check_button.setText("Check again" if self.report else "Check this run")
        self.gguf_button.setEnabled(has_run and not busy and self._gguf_file(self.studio.run_dir) is not None)
        self.cancel_button.setVisible(self.checking)
        self.progress.setVisible(self.checking)
        self.studio.readiness_changed.emit()

    def shutdown(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task.wait(30_000)
