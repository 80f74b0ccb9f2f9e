"""Stage 6: the current run to GGUF files (merge, convert, quantize), with their expected sizes before, and the
files, the parity check and the Ollama Modelfile after.

Every choice here (types, folder, name, Ollama / LM Studio) is the project's [export] table. The checks and
the export itself run on Tasks; the preflight re-runs shortly after any choice changes."""
from __future__ import annotations

import inspect
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (QCheckBox, QFileDialog, QFormLayout, QGridLayout, QGroupBox, QHBoxLayout,
                               QHeaderView, QLabel, QLineEdit, QProgressBar, QPushButton, QTableWidget,
                               QTableWidgetItem, QVBoxLayout)

from studio.project import QUANT_TYPES
from ui.pages import Page
from ui.tasks import Task
from ui.theme import role_label

# One line of advice per type, for the tooltips: what a user gives up for the smaller file.
QUANT_ADVICE = {
    "f16": "16-bit: exactly the trained model, the largest file",
    "bf16": "16-bit brain float: exact, for runtimes that prefer it",
    "q8_0": "8-bit: practically indistinguishable from 16-bit, half the size",
    "q6_k": "6-bit: very close to 16-bit",
    "q5_k_m": "5-bit: close to 16-bit, a good step down in size",
    "q5_0": "5-bit (older layout)",
    "q4_k_m": "4-bit: the usual choice for chat apps, small with good quality",
    "q4_k_s": "4-bit, a little smaller than Q4_K_M, a little worse",
    "q4_0": "4-bit (older layout)",
    "q3_k_m": "3-bit: small, quality visibly drops",
    "q2_k": "2-bit: smallest, for trying huge models on little memory; quality suffers",
}
PREFLIGHT_DELAY_MS = 300


def megabytes(count: int) -> str:
    return f"{count / 1e9:.2f} GB" if count >= 1e9 else f"{count / 1e6:.0f} MB"


def parameters_of(run_dir: Path) -> int | None:
    """The exported model's parameter count, for the size of each type (None when the run has no weights)."""
    try:
        from studio.export.preflight import model_sources, parameter_count
    except ImportError:  # an older core: estimate from the planner's shape of config.json
        from studio.models import config_if_ready
        from studio.plan.shapes import shape_from_config
        from studio.train.runs import load_run_project

        config = config_if_ready(load_run_project(run_dir).model.name)
        return shape_from_config(config).total_params if config else None
    from studio.errors import StudioError
    try:
        return parameter_count(model_sources(run_dir)[0])
    except StudioError:
        return None


def checks(run_dir: Path, quants: list[str], out_dir: Path | None, overwrite: bool):
    """(parameters, preflight or None): on a Task, since the tokenizer check loads transformers."""
    parameters = parameters_of(run_dir)
    try:
        from studio.export.preflight import preflight_export
    except ImportError:
        return parameters, None
    return parameters, preflight_export(run_dir, quants, out_dir=out_dir, overwrite=overwrite)


def earlier_export(run_dir: Path, out_dir: Path | None):
    """The run's last export as an ExportResult, read back from its report.json (None when there is none, or
    its files are gone), so reopening the app shows what is already on disk."""
    import json

    from studio.export import ExportResult

    report_path = Path(out_dir or Path(run_dir) / "export") / "report.json"
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    files = {quant: Path(info["path"]) for quant, info in report.get("files", {}).items()
             if Path(info["path"]).is_file()}
    if not files:
        return None
    modelfile = report.get("modelfile")
    result = ExportResult(files=files, modelfile=Path(modelfile) if modelfile else None,
                          failed=report.get("failed") or {})
    result.parity = report.get("parity") or {}
    result.report_path = report_path
    result.handoff = report.get("handoff") or []
    return result


class ExportPage(Page):
    title = "Export"
    icon = "export.svg"

    def __init__(self, studio):
        super().__init__(studio)
        self._loading = False
        self.preflight = None
        self.checked = False
        self.parameters: int | None = None
        self.task: Task | None = None
        self.check_task: Task | None = None
        self.result = None

        heading = role_label("heading", "Export")
        self.hint = role_label("hint", "")
        self.hint.setWordWrap(True)

        types = QGroupBox("GGUF types")
        grid = QGridLayout(types)
        self.quant_boxes: dict[str, QCheckBox] = {}
        for i, quant in enumerate(QUANT_TYPES):
            box = QCheckBox(quant.upper())
            box.setToolTip(QUANT_ADVICE.get(quant, ""))
            box.toggled.connect(self._changed)
            self.quant_boxes[quant] = box
            grid.addWidget(box, i // 4, i % 4)

        self.folder = QLineEdit()
        self.folder.setPlaceholderText("the run folder's export/ (default)")
        self.folder.editingFinished.connect(self._changed)
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._choose_folder)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(browse)
        self.model_name = QLineEdit()
        self.model_name.setPlaceholderText("the project's name")
        self.model_name.setToolTip("The name the files get, and the name Ollama / LM Studio show")
        self.model_name.editingFinished.connect(self._changed)
        self.ollama = QCheckBox("Create the model in Ollama (needs Ollama installed)")
        self.lmstudio = QCheckBox("Put the GGUF in LM Studio's models folder")
        self.overwrite = QCheckBox("Replace files of the same name")
        self.overwrite.setToolTip("Off: an export never silently replaces an earlier one")
        for box in (self.ollama, self.lmstudio, self.overwrite):
            box.toggled.connect(self._changed)
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

    def readiness(self) -> tuple[bool, str]:
        if self.result is not None and self.result.files:
            return True, f"{len(self.result.files)} GGUF file(s) written"
        if self.studio.run_dir is None:
            return False, "train a run first"
        return False, "ready to export" if self.preflight is None or self.preflight.ok else "see the checks"

    # --- settings -------------------------------------------------------------------------------------
    @property
    def quants(self) -> list[str]:
        return [q for q, box in self.quant_boxes.items() if box.isChecked()]

    @property
    def out_dir(self) -> Path | None:
        text = self.project.export.output_dir
        return self.project.resolve(text) if text else None

    def _changed(self) -> None:
        if self._loading:
            return
        settings = self.project.export
        settings.quant = self.quants
        settings.output_dir = self.folder.text().strip()
        settings.model_name = self.model_name.text().strip()
        settings.ollama = self.ollama.isChecked()
        settings.lmstudio = self.lmstudio.isChecked()
        self.studio.edited()
        self._schedule_checks()

    def _choose_folder(self) -> None:
        start = str(self.out_dir or (self.studio.run_dir or self.project.folder))
        folder = QFileDialog.getExistingDirectory(self, "Export folder", start)
        if folder:
            self.folder.setText(folder)
            self._changed()

    def _run_changed(self) -> None:
        run = self.studio.run_dir
        if self.task is None:  # not while exporting: the result of this export is on its way
            self.result = earlier_export(run, self.out_dir) if run else None
            self._show_result(self.result)
        self.hint.setText(f"Exports run {run.name}: merges the trained weights into the 16-bit base model, "
                          "converts it to GGUF with llama.cpp's converter, quantizes each chosen type, and "
                          "checks each file against the trained model." if run else
                          "Train a run first (Train page); its weights are what gets exported.")
        self._schedule_checks()

    # --- checks ---------------------------------------------------------------------------------------
    def _schedule_checks(self) -> None:
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
        if self.check_task is not None and self.check_task.is_running():
            self.check_timer.start()  # one check at a time; try again shortly
            return
        run_dir, quants, out_dir, overwrite = self.studio.run_dir, self.quants, self.out_dir, self.overwrite.isChecked()
        if run_dir is None:
            return
        self.check_task = Task(lambda progress, cancelled: checks(run_dir, quants, out_dir, overwrite), self,
                               needs_ml=True)
        self.check_task.succeeded.connect(lambda answer, key=(run_dir, quants): self._checked(key, *answer))
        self.check_task.failed.connect(self.checks_label.setText)
        self.check_task.start()

    def _checked(self, key, parameters, preflight) -> None:
        if key != (self.studio.run_dir, self.quants):
            return  # the choices changed while checking; the newer check will answer
        from studio.export.quantize import BITS_PER_WEIGHT

        self.parameters, self.preflight, self.checked = parameters, preflight, True
        sizes = dict(preflight.sizes) if preflight else {}
        for quant, box in self.quant_boxes.items():
            size = sizes.get(quant) or (int(parameters * BITS_PER_WEIGHT[quant] / 8) if parameters else None)
            box.setText(quant.upper() + (f"  ~{megabytes(size)}" if size else ""))
        lines = []
        if preflight is not None:
            existing = [p for p in preflight.problems if "already exist" in p]
            # Files from an earlier export are not an error to someone who just exported: say it plainly.
            lines += [f"<span style='color:#e74c3c'>✗ {problem}</span>" for problem in preflight.problems
                      if problem not in existing]
            lines += [f"<span style='color:#e0a800'>! {warning}</span>" for warning in preflight.warnings]
            if existing:
                names = existing[0].split(" already exist")[0]
                lines.append(f"Already exported: {names}. To export again, tick “Replace files of the same name” "
                             "or choose another folder.")
            if preflight.ok:
                lines.append(f"✓ Ready: about {megabytes(preflight.needed_bytes)} needed, "
                             f"{megabytes(preflight.free_bytes)} free.")
        self.checks_label.setText("<br>".join(lines))
        self._update_buttons()
        self.studio.readiness_changed.emit()

    # --- export ---------------------------------------------------------------------------------------
    def start_export(self) -> None:
        from studio.export import export_run

        run_dir, quants, out_dir = self.studio.run_dir, self.quants, self.out_dir
        wanted = {"ollama": self.ollama.isChecked(), "lmstudio": self.lmstudio.isChecked(),
                  "overwrite": self.overwrite.isChecked()}
        accepted = inspect.signature(export_run).parameters
        options = {k: v for k, v in wanted.items() if k in accepted}

        def work(progress, cancelled):
            return export_run(run_dir, quants, progress, cancelled, out_dir, **options)

        self.result = None
        self._show_result(None)
        self.task = Task(work, self, needs_ml=True)
        self.task.progress.connect(self._progress)
        self.task.succeeded.connect(self._exported)
        self.task.failed.connect(lambda message: self.status.setText(f"Export failed: {message}"))
        self.task.cancelled_.connect(lambda: self.status.setText("Export cancelled; no partial file was kept."))
        self.task.finished.connect(self._export_ended)
        self.studio.set_busy(True)
        self.task.start()
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
        parity = getattr(result, "parity", None) or {}
        rows = [(q, path, parity.get(q)) for q, path in result.files.items()]
        rows += [(q, None, {"passed": False, "summary": why}) for q, why in result.failed.items()]
        for quant, path, check in rows:
            row = self.files.rowCount()
            self.files.insertRow(row)
            size = megabytes(path.stat().st_size) if path and path.is_file() else ""
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
        report = getattr(result, "report_path", None)
        if report:
            lines.append(f"Export report: {report}")
        lines += getattr(result, "handoff", None) or []
        lines += getattr(result, "problems", None) or []  # a file the export could not write (a full disk)
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
        # Checked, and nothing the checks found blocks it (a core without preflight has only the size check).
        ready = (self.studio.run_dir is not None and not self.studio.busy and bool(self.quants) and self.checked
                 and (self.preflight is None or self.preflight.ok))
        self.export_button.setEnabled(ready and not exporting)
        self.cancel_button.setEnabled(exporting)

    def shutdown(self) -> None:
        for task in (self.task, self.check_task):
            if task is not None:
                task.cancel()
                task.wait(30_000)
