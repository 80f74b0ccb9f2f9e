"""Stage 2: the training data — what the file holds, what is wrong with it, how long its examples are for
the chosen model, and what exactly the model will be trained on.

Reading the file and counting tokens (studio.data.findings) run on a Task (a big file or a first tokenizer
load takes seconds); what depends only on the cutoff or the split is redrawn on the spot from the token
lengths."""
from __future__ import annotations

import copy
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (QAbstractItemView, QApplication, QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout,
                               QGroupBox, QHBoxLayout, QHeaderView, QLabel, QListWidget, QProgressBar, QPushButton,
                               QTableWidget, QTableWidgetItem, QTabWidget, QVBoxLayout, QWidget)

from studio.errors import StudioError
from studio.plan import ADVICE
from ui.context import touches
from ui.pages import Page
from ui.tasks import Latest, Task
from ui.theme import role_label
from ui.widgets.token_view import TokenView

# What the findings depend on: a change to one of these reads the file again; to the others below, only redraws.
READ_FROM = ("data.train_file", "data.sheet", "data.format", "data.columns", "data.train_on", "data.system_prompt", "model.")
DRAWN_FROM = ("train.max_seq_len", "train.seed", "data.eval_fraction", "data.drop_duplicates")


def preview_question(text: str, head: int = 80) -> str:
    """A question for the preview's one line: a long first paragraph (an Alpaca instruction many rows share)
    is shortened so the row's own input after it stays in sight."""
    first, sep, rest = text.partition("\n\n")
    if sep and len(first) > head:
        return first[:head].rstrip() + "…\n" + rest
    return text


class DataPage(Page):
    title = "Data"
    icon = "data.svg"

    def __init__(self, studio):
        super().__init__(studio)
        self.findings = None  # studio.data.findings.Findings, once the file is read
        self.error = ""
        self.reading = Latest(self)
        self._stale = False
        self._closed = False
        self.truncated = 0
        self.suggested_cutoff: int | None = None
        self._loading = False
        self.setAcceptDrops(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 16, 16, 16)
        layout.setSpacing(10)
        heading = role_label("heading", "Training data")
        layout.addWidget(heading)
        layout.addLayout(self._build_file_row())
        layout.addLayout(self._build_progress_row())
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.evidence = role_label("hint")
        self.evidence.setWordWrap(True)
        self.material = role_label("hint")  # what training on documents is, shown for documents only
        self.material.setWordWrap(True)
        self.material.setVisible(False)
        self.cutoff_problem = role_label("bad")  # a cutoff that leaves examples without an answer, and its fix
        self.cutoff_problem.setWordWrap(True)
        self.cutoff_fix = QPushButton()
        self.cutoff_fix.clicked.connect(self._use_cutoff_fix)
        self._cutoff_fix_value: int | None = None
        for widget in (self.cutoff_problem, self.cutoff_fix):
            widget.hide()
        layout.addWidget(self.summary)
        layout.addWidget(self.cutoff_problem)
        layout.addWidget(self.cutoff_fix, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self.evidence)
        layout.addWidget(self.material)
        body = QHBoxLayout()
        body.setSpacing(16)
        body.addWidget(self._build_tabs(), 1)
        body.addWidget(self._build_options())
        layout.addLayout(body, 1)
        studio.busy_changed.connect(lambda busy: self.setEnabled(not busy))
        self._read_stamp = None  # (mtime, size) of the file when it was read: a change means read it again
        QApplication.instance().applicationStateChanged.connect(self._app_state_changed)
        self.expert_only(self.evidence)

    # --- building ------------------------------------------------------------------------------------
    def _build_file_row(self) -> QHBoxLayout:
        row = QHBoxLayout()
        choose = QPushButton("Choose a data file…")
        choose.setToolTip("A spreadsheet (Excel, LibreOffice), a document (Word, PDF, Markdown, text), JSON Lines, "
                          "JSON, CSV, TSV or Parquet. You can also drop a file or a folder on this page.")
        choose.clicked.connect(self._choose)
        folder = QPushButton("Choose a folder of documents…")
        folder.setToolTip("Every .docx, .pdf, .md and .txt file in the folder and its subfolders.")
        folder.clicked.connect(self._choose_folder)
        self.file_label = QLabel()
        self.file_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.sheet_label = QLabel("Sheet:")
        self.sheet_picker = QComboBox()
        self.sheet_picker.setToolTip("The workbook has several sheets with data; training reads this one.")
        self.sheet_picker.activated.connect(lambda: self._set_sheet(self.sheet_picker.currentText()))
        self._show_sheets([])
        drop = role_label("hint", "or drop a file or folder here")
        row.addWidget(choose)
        row.addWidget(folder)
        row.addWidget(self.file_label, 1)
        row.addWidget(self.sheet_label)
        row.addWidget(self.sheet_picker)
        row.addWidget(drop)
        return row

    def _build_progress_row(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress_label = QLabel()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self._cancel_clicked)
        row.addWidget(self.progress_label)
        row.addWidget(self.progress, 1)
        row.addWidget(self.cancel_button)
        self._progress_widgets = (self.progress, self.progress_label, self.cancel_button)
        self._show_progress(False)
        return row

    def _build_tabs(self) -> QTabWidget:
        self.tabs = QTabWidget()
        self.preview = QTableWidget(0, 0)
        self.preview.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.preview.verticalHeader().setVisible(False)
        self.preview.setWordWrap(False)
        self.problems = QListWidget()
        self.problems.setWordWrap(True)
        tokens = QWidget()
        column = QVBoxLayout(tokens)
        self._histogram = None  # built on first use: pyqtgraph's import would add ~0.5 s to the cold start
        self._histogram_slot = QVBoxLayout()
        self.token_summary = QLabel()
        self.token_summary.setWordWrap(True)
        self.fit_cutoff = QPushButton()
        self.fit_cutoff.setToolTip(ADVICE["cutoff"])
        self.fit_cutoff.clicked.connect(self._use_suggested_cutoff)
        self.fit_cutoff.setVisible(False)
        column.addLayout(self._histogram_slot, 1)
        column.addWidget(self.token_summary)
        column.addWidget(self.fit_cutoff, 0, Qt.AlignmentFlag.AlignLeft)
        example = QWidget()
        column = QVBoxLayout(example)
        legend = QLabel("<span style='color:#2f7de1; font-weight:600'>Blue</span>: tokens the model is trained "
                        "on · <span style='color:#8a8f98'>grey</span>: context it reads but is not trained on · "
                        "<span style='color:#e74c3c; text-decoration:line-through'>struck</span>: cut by the cutoff")
        legend.setWordWrap(True)
        self.token_view = TokenView()
        column.addWidget(legend)
        column.addWidget(self.token_view, 1)
        self.tabs.addTab(self.preview, "Preview")
        self.tabs.addTab(self.problems, "Problems")
        self.tabs.addTab(tokens, "Token lengths")
        self.tabs.addTab(example, "Trained tokens")
        return self.tabs

    def _build_options(self) -> QGroupBox:
        box = QGroupBox("How to use this data")
        box.setFixedWidth(330)
        form = QFormLayout(box)
        form.setContentsMargins(12, 16, 12, 12)
        form.setVerticalSpacing(10)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapAllRows)
        self.bad_rows = QComboBox()
        self.bad_rows.addItem("Skip them and train on the rest", True)
        self.bad_rows.addItem("Stop, so I can fix the file", False)
        self.bad_rows.setToolTip("What training does with rows that cannot be used (listed under Problems).")
        self.duplicates = QCheckBox("Drop rows that repeat an earlier row")
        self.duplicates.setToolTip("Exact repeats make the model memorize those answers.")
        self.train_on = QComboBox()
        self.train_on.addItem("The answers only (recommended)", "assistant")
        self.train_on.addItem("Every token, questions too", "all")
        self.train_on.setToolTip("The loss is computed on these tokens; the rest is context the model reads.")
        self.eval_percent = QDoubleSpinBox(minimum=0.0, maximum=50.0, singleStep=5.0, decimals=0, suffix=" %")
        self.eval_percent.setToolTip(ADVICE["eval"])
        self.split_label = QLabel()
        self.split_label.setWordWrap(True)
        form.addRow("Rows with problems:", self.bad_rows)
        form.addRow(self.duplicates)
        self.train_on_label = QLabel("Train on:")
        form.addRow(self.train_on_label, self.train_on)
        form.addRow("Hold out for evaluation:", self.eval_percent)
        form.addRow(self.split_label)
        self.bad_rows.currentIndexChanged.connect(lambda: self._set("skip_bad_rows", self.bad_rows.currentData()))
        self.duplicates.toggled.connect(lambda on: self._set("drop_duplicates", on))
        self.train_on.currentIndexChanged.connect(lambda: self._set("train_on", self.train_on.currentData()))
        self.eval_percent.valueChanged.connect(lambda v: self._set("eval_fraction", round(v / 100, 4)))
        self.expert_only(self.train_on_label, self.train_on)  # the answers only: right for nearly everyone
        return box

    # --- project -------------------------------------------------------------------------------------
    def load_project(self) -> None:
        data = self.project.data
        self._loading = True
        self.bad_rows.setCurrentIndex(self.bad_rows.findData(data.skip_bad_rows))
        self.duplicates.setChecked(data.drop_duplicates)
        self.train_on.setCurrentIndex(max(0, self.train_on.findData(data.train_on)))
        self.eval_percent.setValue(data.eval_fraction * 100)
        self._loading = False
        # After the current event: at start-up that is once the window is on screen, so the tokenizer's heavy
        # imports never delay the first paint.
        QTimer.singleShot(0, self.inspect)

    def project_changed(self, keys) -> None:
        if touches(keys, *READ_FROM):
            QTimer.singleShot(0, self.inspect)  # the file, or how it is read, changed: read it again
        elif not touches(keys, *DRAWN_FROM):
            return
        elif self.isVisible():
            self._show_cutoff_and_split()
        else:
            self._stale = True  # the Method page moves the cutoff many times a second; redraw when shown

    def _set(self, name: str, value) -> None:
        if not self._loading:
            self._apply({f"data.{name}": value})

    def _apply(self, change: dict) -> None:
        try:
            self.studio.apply(change)
        except StudioError as error:
            self.summary.setText(str(error))

    @property
    def histogram(self):
        if self._histogram is None:
            from ui.widgets.histogram import TokenHistogram

            self._histogram = TokenHistogram()
            self._histogram.set_bins([], self.project.train.max_seq_len)
            self._histogram_slot.addWidget(self._histogram)
        return self._histogram

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self.histogram  # noqa: B018 - build the chart now that the page is seen
        self.check_file()
        if self._stale:
            self._stale = False
            self._show_cutoff_and_split()

    def _app_state_changed(self, state) -> None:
        if state == Qt.ApplicationState.ApplicationActive:  # back from another program: the file may be gone
            self.check_file()

    def _file_stamp(self):
        """(modified time, size) of the local data file or folder; None for a Hub dataset; "missing" when gone."""
        from studio.data.prepare import locate

        train_file = self.project.data.train_file
        if not train_file:
            return None
        location = locate(self.project, train_file)
        path = Path(location)
        if location == train_file and not path.is_absolute() and not path.exists():
            return None  # a Hub dataset id
        try:
            info = path.stat()
        except OSError:
            return "missing"
        return info.st_mtime_ns, info.st_size

    def check_file(self) -> None:
        """Read the file again when it was deleted or changed since it was read (one stat: no waiting)."""
        if self._closed or self.task is not None or self._read_stamp is None:
            return
        if self._file_stamp() != self._read_stamp:
            self.inspect()

    def use_file(self, path: Path) -> None:
        """Point the project at a data file: relative to the project's folder when it lies inside it."""
        self._apply({"data.train_file": self.project.file_name(path), "data.sheet": ""})  # a new file: its first sheet

    def _choose(self) -> None:
        from studio.data.readers import DOCUMENTS, KINDS, SHEETS  # what the readers read

        suffixes = " ".join("*" + suffix for suffix in (*KINDS, *SHEETS, *DOCUMENTS))
        kinds = f"Datasets, spreadsheets and documents ({suffixes});;All files (*)"
        path, _ = QFileDialog.getOpenFileName(self, "Training data", str(self.project.folder), kinds)
        if path:
            self.use_file(Path(path))

    def _choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "A folder of documents", str(self.project.folder))
        if path:
            self.use_file(Path(path))

    def _set_sheet(self, name: str) -> None:
        if name and name != (self.findings.report.sheet if self.findings else ""):
            self._apply({"data.sheet": name})

    def _show_sheets(self, sheets: list[str], current: str = "") -> None:
        """The sheet picker, shown only when the workbook has more than one sheet with data."""
        self.sheet_picker.clear()
        self.sheet_picker.addItems(sheets)
        self.sheet_picker.setCurrentText(current)
        for widget in (self.sheet_label, self.sheet_picker):
            widget.setVisible(len(sheets) > 1)

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt's name
        urls = event.mimeData().urls()
        if urls and urls[0].isLocalFile():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt's name
        urls = event.mimeData().urls()
        if urls and urls[0].isLocalFile():
            event.acceptProposedAction()
            self.use_file(Path(urls[0].toLocalFile()))

    # --- inspecting ----------------------------------------------------------------------------------
    @property
    def task(self) -> Task | None:
        return self.reading.current

    def inspect(self) -> None:
        if self._closed:
            return
        self.cancel()
        self.findings, self.error = None, ""
        self._clear()
        train_file = self.project.data.train_file
        self.file_label.setText(train_file or "No file chosen yet.")
        if not train_file:
            self.summary.setText("Choose the file with your examples: conversations, question/answer pairs, "
                                 "instructions, or plain text.")
            self.studio.readiness_changed.emit()
            return
        from studio.data.findings import inspect_project_data

        self._read_stamp = self._file_stamp()
        project = copy.deepcopy(self.project)  # the Task reads a snapshot while the pages keep editing
        self.reading.start(Task(lambda progress, cancelled: inspect_project_data(project, progress, cancelled), self,
                                needs_ml=True, on_progress=self._progressed, on_success=self._inspected,
                                on_failure=self._failed, on_cancel=self._failed))
        self.summary.setText(f"Reading {Path(train_file).name}…")
        self._show_progress(True)
        self.studio.readiness_changed.emit()

    def cancel(self) -> None:
        """Stop the running inspection; it ends on its own thread at its next check, never blocking here."""
        self.reading.drop()
        self._show_progress(False)
        self.studio.readiness_changed.emit()

    def _cancel_clicked(self) -> None:
        self.cancel()
        self.error = "Reading the file was cancelled. Choose it again to read it."
        self.summary.setText(self.error)

    def shutdown(self) -> None:
        self._closed = True
        self.cancel()  # never waits: the window outlives its tasks, and quitting waits for them (ui.tasks.stop_all)

    def _progressed(self, message: str, fraction: float) -> None:
        self.progress_label.setText(message)
        self.progress.setValue(int(1000 * fraction))

    def _failed(self, message: str) -> None:
        self._show_progress(False)
        self.error = message
        self.summary.setText(message)
        self.studio.readiness_changed.emit()

    def _inspected(self, findings) -> None:
        self._show_progress(False)
        self.findings = findings
        report = findings.report
        self.summary.setText(report.summary(plain=not self.studio.expert))
        self.evidence.setText(f"Detected as {report.format} because: " + "; ".join(report.evidence))
        self._show_sheets(report.sheets, report.sheet)
        if report.kind == "documents":
            from studio.data.documents import EXPLANATION

            self.material.setText(EXPLANATION)
        self.material.setVisible(report.kind == "documents")
        self._fill_preview(report)
        self._fill_problems(report, findings.stats)
        self._show_cutoff_and_split()
        if findings.stats is None:
            self.token_summary.setText(findings.token_note)
        self.studio.readiness_changed.emit()

    def _show_progress(self, on: bool) -> None:
        for widget in self._progress_widgets:
            widget.setVisible(on)
        if on:
            self.progress.setValue(0)
            self.progress_label.setText("Starting")

    def _clear(self) -> None:
        self.summary.setText("")
        self.evidence.setText("")
        self.material.setVisible(False)
        self.preview.clear()
        self.preview.setRowCount(0)
        self.preview.setColumnCount(0)
        self.problems.clear()
        if self._histogram is not None:
            self._histogram.set_bins([], self.project.train.max_seq_len)
        self.token_summary.setText("")
        self.token_view.set_pieces([])
        self.split_label.setText("")
        self.tabs.setTabText(1, "Problems")
        self.cutoff_problem.hide()
        self.cutoff_fix.hide()

    # --- drawing -------------------------------------------------------------------------------------
    def _fill_preview(self, report) -> None:
        rows = report.preview
        texts = any(r.text is not None for r in rows)
        # "Examples, row 7", "manual.pdf, page 4"; else the number the Problems list uses: a line of the file
        # (a CSV's first example is on line 2, under its header), an item of a JSON list
        where = "Where" if any(r.origin for r in rows) else report.unit.capitalize()
        headers = [where, "Text"] if texts else [where, "First question", "First answer", "Turns"]
        self.preview.setColumnCount(len(headers))
        self.preview.setHorizontalHeaderLabels(headers)
        self.preview.setRowCount(len(rows))
        for i, row in enumerate(rows):
            number = row.origin or str(row.number)
            if row.text is not None:
                cells = [number, row.text]
            else:
                user = preview_question(next((m["content"] for m in row.messages if m["role"] == "user"), ""))
                answer = next((m["content"] for m in row.messages if m["role"] == "assistant"), "")
                cells = [number, user, answer, str(len(row.messages))]
            for j, cell in enumerate(cells):
                item = QTableWidgetItem(cell.replace("\n", " ⏎ ")[:300])
                item.setToolTip(cell[:2000])
                self.preview.setItem(i, j, item)
        header = self.preview.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        for j in range(1, len(headers)):
            header.setSectionResizeMode(j, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        if not texts:
            header.setSectionResizeMode(len(headers) - 1, QHeaderView.ResizeMode.ResizeToContents)

    def _fill_problems(self, report, stats) -> None:
        self.problems.clear()
        messages = [p.message for p in report.problems]
        if report.problem_count > len(report.problems):
            messages.append(f"… and {report.problem_count - len(report.problems)} more.")
        messages += report.duplicate_messages()
        found = stats.problems_at(self.project.train.max_seq_len) if stats is not None else []
        messages += [p.message for p in found]
        self.problems.addItems(messages or ["No problems found: every row can be used."])
        count = report.problem_count + len(found)
        self.tabs.setTabText(1, f"Problems ({count})" if count else "Problems")
        self.duplicates.setText(f"Drop rows that repeat an earlier row ({report.duplicates} found)")

    def _show_cutoff_and_split(self) -> None:
        """The parts that follow the cutoff, the split and the training target: cheap, no file reading."""
        if self.findings is None:
            return
        from studio.data.split import MIN_ROWS_TO_SPLIT
        from studio.data.stats import histogram

        report, stats = self.findings.report, self.findings.stats
        cutoff = self.project.train.max_seq_len
        self._show_cutoff_problem()
        if stats is not None:
            self._fill_problems(report, stats)  # which rows the cutoff leaves without an answer
        train, held = self.findings.split(self.project)
        self.split_label.setText(f"{train:,} examples for training, {held:,} held out for evaluation."
                                 if held or self.project.data.eval_fraction == 0 else
                                 f"{train:,} examples: too few to hold any out ({MIN_ROWS_TO_SPLIT} or more are "
                                 "needed).")
        if stats is None:
            return
        # Bins up to the cutoff when the examples reach it; when they stop far short, up to the longest, so
        # that the bars say something about the data instead of sitting in one column.
        edge = cutoff if stats.longest * 2 > cutoff else -(-max(stats.longest, 10) // 10) * 10
        self.histogram.set_bins(histogram(stats.lengths, edge), cutoff)
        longer = stats.longer_than(cutoff)
        self.suggested_cutoff = stats.suggested_cutoff(cutoff)
        if self.suggested_cutoff:
            self.fit_cutoff.setText(f"Use a cutoff of {self.suggested_cutoff} tokens (just above the longest "
                                    "example: less memory, nothing cut)")
        self.fit_cutoff.setVisible(self.suggested_cutoff is not None)
        if not longer:
            cut = f"All fit under the {cutoff:,}-token cutoff (set on the Method page)."
        elif report.format == "text":
            cut = (f"{len(longer):,} are longer than the {cutoff:,}-token cutoff and are split into windows "
                   "(nothing is lost).")
        else:
            cut = (f"{len(longer):,} are longer than the {cutoff:,}-token cutoff and are cut, losing "
                   f"{sum(n - cutoff for n in longer):,} tokens. Raise the cutoff on the Method page to keep them.")
        self.token_summary.setText(f"{stats.examples:,} examples; longest {stats.longest:,} tokens, mean "
                                   f"{stats.mean:,.0f}. {cut}")
        self.truncated = len(longer)
        self._show_example(cutoff)

    def _show_cutoff_problem(self) -> None:
        """Name the setting that makes examples unusable, with a button that changes it (studio's sentence)."""
        sentence, better = self.findings.cutoff_problem(self.project)
        self._cutoff_fix_value = better
        self.cutoff_problem.setText(sentence)
        self.cutoff_fix.setText(f"Use a cutoff of {better:,} tokens" if better else "")
        self.cutoff_problem.setVisible(bool(sentence))
        self.cutoff_fix.setVisible(bool(better))
        report = self.findings.report
        usable = self.findings.usable_rows(self.project)
        summary = report.summary(plain=not self.studio.expert)
        if usable != report.usable_rows:
            summary += f" Under the current cutoff, {usable:,} can be trained on." if usable else \
                " Under the current cutoff, none can be trained on."
        self.summary.setText(summary)
        self.studio.readiness_changed.emit()

    def _use_cutoff_fix(self) -> None:
        if self._cutoff_fix_value:
            self._apply({"train.max_seq_len": self._cutoff_fix_value})  # the Method page's control follows

    def _use_suggested_cutoff(self) -> None:
        if self.suggested_cutoff:
            self._apply({"train.max_seq_len": self.suggested_cutoff})  # the Method page's control follows

    def _show_example(self, cutoff: int) -> None:
        from studio.data import TemplateError, highlight

        report, tokenizer = self.findings.report, self.findings.tokenizer
        if tokenizer is None or not report.preview:
            return
        try:
            pieces = highlight(report.preview[0], tokenizer, self.project.data.train_on, cutoff,
                               self.project.data.system_prompt)
        except TemplateError as error:
            self.token_view.setPlainText(f"This example cannot be shown: {error}.")
            return
        self.token_view.set_pieces(pieces)

    def view_changed(self, expert: bool) -> None:
        if self.findings is not None:
            self._show_cutoff_problem()  # the summary names the format (Expert) or says it in words (Simple)

    def readiness(self):
        data = self.project.data
        if not data.train_file:
            return False, "choose a data file"
        if self.task is not None:
            return False, "reading the file…"
        if self.findings is None:
            return False, "cannot be read" if self.error else "not read yet"
        report = self.findings.report
        if not report.usable:
            return False, "no usable rows"
        if self.findings.usable_rows(self.project) == 0:
            return False, "cutoff too short"
        if report.problem_count and not data.skip_bad_rows:
            return False, f"{report.problem_count} bad rows: training would stop"
        what = report.layout(plain=True) if not self.studio.expert else report.format
        return True, f"{self.findings.usable_rows(self.project):,} {report.rows_word}, {what}"
