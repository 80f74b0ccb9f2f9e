"""Stage 6: the current run to GGUF files (merge, convert, quantize), with their expected sizes before, and the
files, the parity check and the Ollama Modelfile after.

Every choice here (types, folder, name, Ollama / LM Studio) is the project's [export] table. The checks
(studio.export.preflight) and the export itself run on Tasks; the preflight re-runs shortly after any choice
changes."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (QCheckBox, QFileDialog, QFormLayout, QFrame, QGridLayout, QGroupBox, QHBoxLayout,
                               QHeaderView, QLabel, QLineEdit, QProgressBar, QPushButton, QSizePolicy,
                               QTableWidget, QTableWidgetItem, QToolButton, QVBoxLayout)

from studio import units
from studio.errors import StudioError
from studio.glossary import TERMS
from studio.vocabulary import QUANT_TYPES
from ui.context import touches
from ui.pages import Page
from ui.tasks import Latest, Task
from ui.theme import role_label

PREFLIGHT_DELAY_MS = 300
SIMPLE_QUANTS = ("f16", "q8_0", "q4_k_m")  # the types Simple view offers (each has a line in the glossary)


def wrapping_label(role: str = "hint") -> QLabel:
    """A label for long text (paths, command lines): it wraps and never asks the window to grow for it."""
    label = role_label(role, "")
    label.setWordWrap(True)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    label.setMinimumWidth(1)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class ExportPage(Page):
    title = "Export"
    icon = "export.svg"

    def __init__(self, studio):
        super().__init__(studio)
        self._loading = False
        self.preflight = None
        self.checked = False
        self.task: Task | None = None  # the export
        self.checking = Latest(self)  # the preflight for the current choices
        self.result = None

        heading = role_label("heading", "Export")
        self.hint = role_label("hint", "")
        self.hint.setWordWrap(True)

        types = self.types = QGroupBox("GGUF types")
        grid = QGridLayout(types)
        self.quant_boxes: dict[str, QCheckBox] = {}
        # The three Simple view offers first, so hiding the others leaves no gaps in the grid.
        ordered = [*SIMPLE_QUANTS, *(q for q in QUANT_TYPES if q not in SIMPLE_QUANTS)]
        for i, quant in enumerate(ordered):
            box = QCheckBox(quant.upper())
            box.setToolTip(QUANT_TYPES[quant].advice)
            box.toggled.connect(self._controls_changed)
            self.quant_boxes[quant] = box
            grid.addWidget(box, i // 4, i % 4)
            if quant not in SIMPLE_QUANTS:
                self.expert_only(box)
        # Simple view names the three types it offers in plain words (the glossary's), under the boxes.
        self.types_explained = role_label("hint", "<br>".join(f"{q.upper()}: {TERMS[q.upper()]}"
                                                              for q in SIMPLE_QUANTS))
        self.types_explained.setWordWrap(True)
        grid.addWidget(self.types_explained, (len(QUANT_TYPES) + 3) // 4, 0, 1, 4)

        self.folder = QLineEdit()
        self.folder.setPlaceholderText("the run folder's export/ (default)")
        self.folder.editingFinished.connect(self._controls_changed)
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._choose_folder)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(browse)
        self.model_name = QLineEdit()
        self.model_name.setPlaceholderText("the project's name")
        self.model_name.setToolTip("The name the files get, and the name Ollama / LM Studio show")
        self.model_name.editingFinished.connect(self._controls_changed)
        self.ollama = QCheckBox("Create the model in Ollama (needs Ollama installed)")
        self.lmstudio = QCheckBox("Put the GGUF in LM Studio's models folder")
        self.overwrite = QCheckBox("Replace files of the same name")
        self.overwrite.setToolTip("Off: an export never silently replaces an earlier one")
        for box in (self.ollama, self.lmstudio, self.overwrite):
            box.toggled.connect(self._controls_changed)
        where = QGroupBox("Where")
        form = QFormLayout(where)
        form.addRow("Folder:", folder_row)
        form.addRow("Model name:", self.model_name)
        form.addRow("", self.ollama)
        form.addRow("", self.lmstudio)
        form.addRow("", self.overwrite)

        self.checks_label = wrapping_label("")
        self.export_button = QPushButton("Export")
        self.export_button.setShortcut("Ctrl+E")
        self.export_button.setToolTip("Merge, convert and quantize (Ctrl+E)")
        self.export_button.clicked.connect(self.start_export)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_export)
        self.progress = QProgressBar()
        self.status = wrapping_label("")
        action_row = QHBoxLayout()
        action_row.addWidget(self.export_button)
        action_row.addWidget(self.cancel_button)
        action_row.addWidget(self.progress, 1)

        self.files = QTableWidget(0, 4)
        self.files.setHorizontalHeaderLabels(["Type", "File", "Size", "How it answers"])
        self.files.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.files.verticalHeader().setVisible(False)
        self.files.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.open_button = QPushButton("Open folder")
        self.open_button.clicked.connect(self.open_folder)
        self.details_button = QToolButton()
        self.details_button.setText("Details")
        self.details_button.setCheckable(True)
        self.details_button.setToolTip("The check's numbers for each file, and where the files are")
        self.details_button.toggled.connect(self._show_details)
        self.details = wrapping_label()  # the check's numbers, hidden until asked for
        self.details.hide()
        self.modelfile = wrapping_label()
        result_row = QHBoxLayout()
        result_row.addWidget(self.modelfile, 1)
        result_row.addWidget(self.details_button, 0, Qt.AlignmentFlag.AlignTop)
        result_row.addWidget(self.open_button, 0, Qt.AlignmentFlag.AlignTop)

        # Ollama missing is said where the user looks after an export, with what to do instead.
        self.ollama_box = QFrame()
        self.ollama_box.setFrameShape(QFrame.Shape.StyledPanel)
        self.ollama_text = wrapping_label("warn")
        ollama_open = QPushButton("Open folder")
        ollama_open.clicked.connect(self.open_folder)
        ollama_row = QHBoxLayout(self.ollama_box)
        ollama_row.addWidget(self.ollama_text, 1)
        ollama_row.addWidget(ollama_open, 0, Qt.AlignmentFlag.AlignTop)
        self.ollama_box.hide()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 16, 16, 16)
        layout.setSpacing(8)
        layout.addWidget(heading)
        layout.addWidget(self.hint)
        layout.addWidget(types)
        layout.addWidget(where)
        layout.addWidget(self.checks_label)
        layout.addLayout(action_row)
        layout.addWidget(self.status)
        layout.addWidget(self.files, 1)
        layout.addWidget(self.ollama_box)
        layout.addLayout(result_row)
        layout.addWidget(self.details)

        self.check_timer = QTimer(self)  # a burst of clicks runs the checks once
        self.check_timer.setSingleShot(True)
        self.check_timer.setInterval(PREFLIGHT_DELAY_MS)
        self.check_timer.timeout.connect(self.run_checks)
        studio.run_changed.connect(lambda run: self._run_changed())
        studio.busy_changed.connect(lambda busy: self._run_changed())
        self._show_result(None)
        self.view_changed(studio.expert)

    # --- page protocol --------------------------------------------------------------------------------
    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        if not self.checked and not self.check_timer.isActive():
            self._schedule_checks()

    def load_project(self) -> None:
        settings = self.project.export
        self._loading = True
        for quant, box in self.quant_boxes.items():
            box.setChecked(quant in settings.quant)
        self.folder.setText(settings.output_dir)
        self.model_name.setText(settings.model_name)
        self.ollama.setChecked(settings.ollama)
        self.lmstudio.setChecked(settings.lmstudio)
        self._loading = False
        self._run_changed()

    def project_changed(self, keys) -> None:
        if touches(keys, "export.", "model.name"):
            self.load_project()

    def view_changed(self, expert: bool) -> None:
        self.types.setTitle("GGUF types" if expert else "Files to make")
        self.types_explained.setVisible(not expert)
        self._describe_run()

    def readiness(self) -> tuple[bool, str]:
        from studio.train.runs import trained_weights_dir

        if self.task is not None:
            return False, "exporting…"
        if self.result is not None and self.result.files:
            return True, f"{len(self.result.files)} GGUF file(s) written"
        if self.studio.busy:  # training: its weights are not there yet
            return False, "after training ends"
        if self.studio.run_dir is None or trained_weights_dir(self.studio.run_dir) is None:
            return False, "train a run first"  # none yet, or the current one failed before saving weights
        if self.preflight is None:  # not checked yet: an unfinished run must not read as ready
            return False, "trained: open to export"
        return False, "ready to export" if self.preflight.ok else "see the checks"

    # --- settings -------------------------------------------------------------------------------------
    @property
    def quants(self) -> list[str]:
        return [q for q, box in self.quant_boxes.items() if box.isChecked()]

    @property
    def out_dir(self) -> Path | None:
        """Where the current run's export goes (the project's folder setting, else the run's export/)."""
        from studio.export import export_folder

        run = self.studio.run_dir
        return export_folder(run, self.project) if run else None

    def _controls_changed(self) -> None:
        if self._loading:
            return
        try:
            self.studio.apply({"export.quant": self.quants, "export.output_dir": self.folder.text().strip(),
                               "export.model_name": self.model_name.text().strip(),
                               "export.ollama": self.ollama.isChecked(), "export.lmstudio": self.lmstudio.isChecked()})
        except StudioError as error:
            self.checks_label.setText(str(error))
            return
        self._schedule_checks()  # the overwrite box is not a project setting: check again here too

    def _choose_folder(self) -> None:
        start = str(self.out_dir or self.project.folder)
        folder = QFileDialog.getExistingDirectory(self, "Export folder", start)
        if folder:
            self.folder.setText(folder)
            self._controls_changed()

    def _run_changed(self) -> None:
        run = self.studio.run_dir
        if self.task is None:  # not while exporting: the result of this export is on its way
            from studio.export import last_export

            self.result = last_export(run, self.project) if run else None
            self._show_result(self.result)
        self._describe_run()
        self._schedule_checks()

    def _describe_run(self) -> None:
        run = self.studio.run_dir
        if run is None:
            self.hint.setText("Train a run first (Train page); its weights are what gets exported.")
        elif self.studio.expert:
            self.hint.setText(f"Exports run {run.name}: merges the trained weights into the 16-bit base model, "
                              "converts it to GGUF with llama.cpp's converter, quantizes each chosen type, and "
                              "checks each file against the trained model.")
        else:
            self.hint.setText(f"Makes files of your trained model (run {run.name}) that chat apps such as Ollama, "
                              f"LM Studio and llama.cpp run, and checks that each answers like your trained model. "
                              f"GGUF: {TERMS['GGUF']}")

    # --- checks ---------------------------------------------------------------------------------------
    def _schedule_checks(self) -> None:
        self.checking.drop()  # its answer would be for the choices before this change
        self.preflight, self.checked = None, False
        self._update_buttons()
        # Only while the page is shown: the checks import transformers and llama.cpp, and a thread importing
        # native libraries holds Python's lock long enough to freeze the window (seen: 1.5 s mid-training).
        if self.studio.run_dir is not None and not self.studio.busy and self.isVisible():
            self.checks_label.setText("Checking…")
            self.check_timer.start()
        else:
            self.checks_label.setText("")

    def run_checks(self) -> None:
        from studio.export import preflight_export

        if self.checking.alive:
            self.check_timer.start()  # one check at a time; try again shortly
            return
        run_dir, quants, out_dir, overwrite = self.studio.run_dir, self.quants, self.out_dir, self.overwrite.isChecked()
        if run_dir is None:
            return
        self.checking.start(Task(lambda progress, cancelled: preflight_export(run_dir, quants, out_dir, overwrite),
                                 self, needs_ml=True, on_success=self._checked,
                                 on_failure=self.checks_label.setText))

    def _checked(self, preflight) -> None:
        from studio.export.preflight import estimated_size

        self.preflight, self.checked = preflight, True
        for quant, box in self.quant_boxes.items():
            size = preflight.sizes.get(quant) or estimated_size(preflight.parameters, quant)
            box.setText(quant.upper() + (f"  ~{units.file_size(size)}" if size else ""))
        # Files from an earlier export are not an error to someone who just exported: say it plainly.
        existing = preflight.problem("files_exist")
        lines = [f"<span style='color:#e74c3c'>✗ {problem}</span>" for problem in preflight.problems
                 if problem is not existing]
        lines += [f"<span style='color:#e0a800'>! {warning}</span>" for warning in preflight.warnings]
        from studio.export.handoff import ollama_installed, ollama_missing_before_export

        if self.ollama.isChecked() and not ollama_installed():
            lines.append(f"<span style='color:#e0a800'>! {ollama_missing_before_export()}</span>")
        if existing:
            names = ", ".join(path.name for path in preflight.existing)
            lines.append(f"Already exported: {names}. To export again, tick “Replace files of the same name” "
                         "or choose another folder.")
        if preflight.ok:
            lines.append(f"✓ Ready: about {units.file_size(preflight.needed_bytes)} needed, "
                         f"{units.file_size(preflight.free_bytes)} free.")
        self.checks_label.setText("<br>".join(lines))
        self._update_buttons()
        self.studio.readiness_changed.emit()

    # --- export ---------------------------------------------------------------------------------------
    def start_export(self) -> None:
        from studio.export import export_run

        run_dir, quants, out_dir = self.studio.run_dir, self.quants, self.out_dir
        options = {"ollama": self.ollama.isChecked(), "lmstudio": self.lmstudio.isChecked(),
                   "overwrite": self.overwrite.isChecked()}

        def work(progress, cancelled):
            return export_run(run_dir, quants, progress, cancelled, out_dir, **options)

        self.result = None
        self._show_result(None)
        self.checking.drop()
        self.studio.set_busy(True)
        self.task = Task(work, self, needs_ml=True, on_progress=self._progress, on_success=self._exported,
                         on_failure=lambda message: self.status.setText(f"Export failed: {message}"),
                         on_cancel=self.status.setText,  # the core's words: what was removed, what was kept
                         on_finish=self._export_ended).start()
        self.status.setText("Starting…")
        self._update_buttons()

    def _progress(self, message: str, fraction: float) -> None:
        self.status.setText(message)
        self.progress.setValue(int(100 * fraction))

    def cancel_export(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.status.setText("Cancelling…")

    def _exported(self, result) -> None:
        self.result = result
        written = ", ".join(path.name for path in result.files.values())
        self.status.setText(f"Exported: {written}." if written else "No file was written.")
        self._show_result(result)

    def _export_ended(self) -> None:
        self.task = None
        self.studio.set_busy(False)
        self.studio.set_run(self.studio.run_dir)  # the Test page now finds the GGUF
        self._update_buttons()

    def _show_result(self, result) -> None:
        from studio.export.handoff import OLLAMA_MISSING, ollama_missing_advice

        self.files.setRowCount(0)
        self.modelfile.setText("")
        self.details.setText("")
        self.open_button.setEnabled(bool(result and result.files))
        self.details_button.setEnabled(result is not None)
        missing = result is not None and any(line.startswith(OLLAMA_MISSING) for line in result.handoff)
        self.ollama_text.setText(ollama_missing_advice() if missing else "")
        self.ollama_box.setVisible(missing)
        if result is None:
            return
        parity = result.parity
        rows = [(q, path, parity.get(q)) for q, path in result.files.items()]
        rows += [(q, None, {"passed": False, "summary": why}) for q, why in result.failed.items()
                 if q not in result.files]  # a written file that failed its check has its row already
        for quant, path, check in rows:
            row = self.files.rowCount()
            self.files.insertRow(row)
            size = units.file_size(path.stat().st_size) if path and path.is_file() else ""
            cells = [quant.upper(), path.name if path else "(not written)", size, self._check_text(quant, check)]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col == 3 and check is not None:
                    item.setToolTip(check.get("summary") or "")  # the numbers, also under Details
                elif path:
                    item.setToolTip(str(path))
                if col == 3 and check is not None and not check.get("passed", True):
                    item.setForeground(Qt.GlobalColor.red)
                self.files.setItem(row, col, item)
        self.files.resizeColumnsToContents()
        # Short lines here (names; the folder opens with a button); full paths and numbers under Details.
        lines = [line for line in result.handoff if not line.startswith(OLLAMA_MISSING)]
        lines += result.problems  # a file the export could not write (a full disk)
        if result.modelfile:
            lines.append(f"Ollama Modelfile: {result.modelfile.name}")
        self.modelfile.setText("\n".join(lines))
        details = [check.get("summary") for check in parity.values() if check.get("summary")]
        details += [f"{q.upper()}: {why}" for q, why in result.failed.items() if q not in parity]
        details += [f"{q.upper()}: {path}" for q, path in result.files.items()]
        if result.modelfile:
            details.append(f"Ollama Modelfile: {result.modelfile}")
        details += [line for line in result.handoff if line.startswith(OLLAMA_MISSING)]
        if result.report_path:
            details.append(f"Export report: {result.report_path}")
        self.details.setText("\n".join(details))

    def _show_details(self, shown: bool) -> None:
        self.details.setVisible(shown)
        self.details_button.setText("Hide details" if shown else "Details")

    @staticmethod
    def _check_text(quant: str, check: dict | None) -> str:
        from studio.export.parity import plain_verdict

        if check is None:
            return "not checked"
        mark = "✓" if check.get("passed") else "✗"
        return f"{mark} {check.get('plain') or plain_verdict(quant, check)}"

    def open_folder(self) -> None:
        if self.result and self.result.files:
            folder = next(iter(self.result.files.values())).parent
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    # --- buttons, closing -----------------------------------------------------------------------------
    def _update_buttons(self) -> None:
        exporting = self.task is not None
        # Checked, and nothing the checks found blocks it.
        ready = (self.studio.run_dir is not None and not self.studio.busy and bool(self.quants) and self.checked
                 and self.preflight is not None and self.preflight.ok)
        self.export_button.setEnabled(ready and not exporting)
        self.cancel_button.setEnabled(exporting)

    def confirm_close(self) -> bool:
        if self.task is None:
            return True
        from PySide6.QtWidgets import QMessageBox

        answer = QMessageBox.question(
            self, "Export is running", "The export is still running. Stop it and close? Files already finished "
            "are kept; the one being written is removed.", QMessageBox.StandardButton.Yes |
            QMessageBox.StandardButton.Cancel)
        return answer == QMessageBox.StandardButton.Yes

    def shutdown(self) -> None:
        # never waits: the window outlives its tasks, and quitting waits for them (ui.tasks.stop_all); a
        # cancelled export removes its partial files itself
        self.checking.drop()
        if self.task is not None:
            self.task.cancel()
