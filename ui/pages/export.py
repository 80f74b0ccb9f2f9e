"""Stage 6: the current run to GGUF files (merge, convert, quantize), with their expected sizes before, and the
files, the parity check and the Ollama Modelfile after.

Every choice here (types, folder, name, Ollama / LM Studio) is the project's [export] table. The checks
(studio.export.preflight) and the export itself run on Tasks; the preflight re-runs shortly after any choice
changes."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (QCheckBox, QFileDialog, QFormLayout, QGridLayout, QGroupBox, QHBoxLayout,
                               QHeaderView, QLabel, QLineEdit, QProgressBar, QPushButton, QTableWidget,
                               QTableWidgetItem, QVBoxLayout)

from studio import units
from studio.errors import StudioError
from studio.vocabulary import QUANT_TYPES
from ui.context import touches
from ui.pages import Page
from ui.tasks import Latest, Task
from ui.theme import role_label

PREFLIGHT_DELAY_MS = 300


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

        types = QGroupBox("GGUF types")
        grid = QGridLayout(types)
        self.quant_boxes: dict[str, QCheckBox] = {}
        for i, quant in enumerate(QUANT_TYPES):
            box = QCheckBox(quant.upper())
            box.setToolTip(QUANT_TYPES[quant].advice)
            box.toggled.connect(self._controls_changed)
            self.quant_boxes[quant] = box
            grid.addWidget(box, i // 4, i % 4)

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

        self.checks_label = QLabel("")
        self.checks_label.setWordWrap(True)
        self.checks_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.export_button = QPushButton("Export")
        self.export_button.setShortcut("Ctrl+E")
        self.export_button.setToolTip("Merge, convert and quantize (Ctrl+E)")
        self.export_button.clicked.connect(self.start_export)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_export)
        self.progress = QProgressBar()
        self.status = QLabel("")
        action_row = QHBoxLayout()
        action_row.addWidget(self.export_button)
        action_row.addWidget(self.cancel_button)
        action_row.addWidget(self.progress, 1)

        self.files = QTableWidget(0, 4)
        self.files.setHorizontalHeaderLabels(["Type", "File", "Size", "Check against the trained model"])
        self.files.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.files.verticalHeader().setVisible(False)
        self.files.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.open_button = QPushButton("Open folder")
        self.open_button.clicked.connect(self.open_folder)
        self.modelfile = role_label("hint", "")
        self.modelfile.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        result_row = QHBoxLayout()
        result_row.addWidget(self.modelfile, 1)
        result_row.addWidget(self.open_button)

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
        layout.addLayout(result_row)

        self.check_timer = QTimer(self)  # a burst of clicks runs the checks once
        self.check_timer.setSingleShot(True)
        self.check_timer.setInterval(PREFLIGHT_DELAY_MS)
        self.check_timer.timeout.connect(self.run_checks)
        studio.run_changed.connect(lambda run: self._run_changed())
        studio.busy_changed.connect(lambda busy: self._run_changed())
        self._show_result(None)

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

    def readiness(self) -> tuple[bool, str]:
        if self.result is not None and self.result.files:
            return True, f"{len(self.result.files)} GGUF file(s) written"
        if self.studio.run_dir is None:
            return False, "train a run first"
        if self.studio.busy and self.task is None:
            return False, "after training ends"
        if self.preflight is None:  # not checked yet: a failed or unfinished run must not read as ready
            return False, "open to check the run"
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
        self.hint.setText(f"Exports run {run.name}: merges the trained weights into the 16-bit base model, "
                          "converts it to GGUF with llama.cpp's converter, quantizes each chosen type, and "
                          "checks each file against the trained model." if run else
                          "Train a run first (Train page); its weights are what gets exported.")
        self._schedule_checks()

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
        self.files.setRowCount(0)
        self.modelfile.setText("")
        self.open_button.setEnabled(bool(result and result.files))
        if result is None:
            return
        parity = result.parity
        rows = [(q, path, parity.get(q)) for q, path in result.files.items()]
        rows += [(q, None, {"passed": False, "summary": why}) for q, why in result.failed.items()]
        for quant, path, check in rows:
            row = self.files.rowCount()
            self.files.insertRow(row)
            size = units.file_size(path.stat().st_size) if path and path.is_file() else ""
            cells = [quant.upper(), path.name if path else "(not written)", size, self._check_text(check)]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if path:
                    item.setToolTip(str(path))
                if col == 3 and check is not None and not check.get("passed", True):
                    item.setForeground(Qt.GlobalColor.red)
                self.files.setItem(row, col, item)
        self.files.resizeColumnsToContents()
        lines = []
        if result.modelfile:
            lines.append(f"Ollama Modelfile: {result.modelfile}")
        if result.report_path:
            lines.append(f"Export report: {result.report_path}")
        lines += result.handoff
        lines += result.problems  # a file the export could not write (a full disk)
        self.modelfile.setText("\n".join(lines))

    @staticmethod
    def _check_text(check: dict | None) -> str:
        if check is None:
            return "not checked"
        mark = "✓ passed" if check.get("passed") else "✗ flagged"
        summary = check.get("summary") or ""
        return f"{mark}: {summary}" if summary else mark

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

    def shutdown(self) -> None:
        self.checking.drop()
        if self.task is not None:
            self.task.cancel()
            self.task.wait(30_000)
        self.checking.wait(30_000)
