"""Stage 1: the base model — from the catalog, a folder on this computer, or a Hugging Face Hub id — with its
size and the planner's verdict for the chosen method on this GPU (or the GPU size being planned for)."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QAbstractItemView, QFileDialog, QFrame, QHBoxLayout, QHeaderView, QLabel, QLineEdit,
                               QMessageBox, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout)

from studio.catalog import config_for, find, list_models, on_this_computer, parameters_text
from studio.errors import StudioError
from studio.plan import estimate, shape_from_config, verdict
from studio.plan.fit import status_of
from ui.pages import Page
from ui.tasks import Task
from ui.theme import role_label
from ui.widgets.plan_gpu import planning_gpu
from ui.widgets.vram_panel import STATUS_ROLE, set_role

COLUMNS = ("Model", "Size", "Licence", "Context", "Chat template", "On this computer", "Fits?")
FIT_WORDS = {"fits": ("fits", "#2bb673"), "tight": ("tight", "#e0a800"), "does_not_fit": ("too big", "#e74c3c")}


class ModelPage(Page):
    title = "Model"
    icon = "model.svg"

    def __init__(self, studio):
        super().__init__(studio)
        self.models = list_models()
        self.local: dict[str, bool] = {m.id: m.embedded for m in self.models}  # downloaded already?
        self.verdict = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 16, 16, 16)
        layout.setSpacing(10)
        heading = role_label("heading", "Base model")
        hint = role_label("hint", "The model you fine-tune. Catalog models are sized without a download; the "
                                  "weights are fetched from the Hugging Face Hub once, when training first needs them.")
        hint.setWordWrap(True)
        layout.addWidget(heading)
        layout.addWidget(hint)
        self.table = self._build_table()
        layout.addWidget(self.table, 1)
        layout.addLayout(self._build_other_sources())
        self.message = role_label("bad")
        self.message.setWordWrap(True)
        layout.addWidget(self.message)
        layout.addWidget(self._build_details())
        self.table.itemSelectionChanged.connect(self._row_chosen)
        studio.project_edited.connect(self.refresh_verdicts)
        studio.gpu_detected.connect(lambda gpu: self.refresh_verdicts())
        studio.busy_changed.connect(lambda busy: self.setEnabled(not busy))
        self._local_task = None
        self._closed = False
        QTimer.singleShot(0, self._check_local_copies)  # once the window is on screen

    # --- building ------------------------------------------------------------------------------------
    def _build_table(self) -> QTableWidget:
        table = QTableWidget(len(self.models), len(COLUMNS))
        table.setHorizontalHeaderLabels(COLUMNS)
        table.verticalHeader().setVisible(False)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setAlternatingRowColors(True)
        header = table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for row, model in enumerate(self.models):
            here = "✓ ships with the app" if model.embedded else "…"
            values = (model.name, model.size_text, model.license, f"{model.context_length:,}", model.chat_template,
                      here, "")
            for column, value in enumerate(values):
                item = QTableWidgetItem(value)
                item.setToolTip(model.note)
                table.setItem(row, column, item)
        return table

    def _build_other_sources(self) -> QHBoxLayout:
        row = QHBoxLayout()
        folder = QPushButton("Local folder…")
        folder.setToolTip("A Hugging Face model folder on this computer (config.json, *.safetensors, tokenizer).")
        folder.clicked.connect(self._choose_folder)
        self.hub_id = QLineEdit()
        self.hub_id.setPlaceholderText("or a Hugging Face Hub id, e.g. HuggingFaceTB/SmolLM2-360M-Instruct")
        self.hub_id.returnPressed.connect(self._use_hub_id)
        use = QPushButton("Use this id")
        use.clicked.connect(self._use_hub_id)
        row.addWidget(folder)
        row.addWidget(self.hub_id, 1)
        row.addWidget(use)
        return row

    def _build_details(self) -> QFrame:
        box = QFrame()
        box.setFrameShape(QFrame.Shape.StyledPanel)
        column = QVBoxLayout(box)
        column.setContentsMargins(12, 10, 12, 10)
        self.chosen_label = QLabel()
        self.chosen_label.setStyleSheet("font-size: 15px; font-weight: 600;")
        self.chosen_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.shape_label = role_label("hint")
        self.shape_label.setWordWrap(True)
        self.verdict_label = QLabel()
        self.verdict_label.setWordWrap(True)
        for widget in (self.chosen_label, self.shape_label, self.verdict_label):
            column.addWidget(widget)
        return box

    # --- choosing ------------------------------------------------------------------------------------
    def load_project(self) -> None:
        entry = find(self.project.model.name)
        self.table.blockSignals(True)
        self.table.clearSelection()
        if entry is not None:
            self.table.selectRow(self.models.index(entry))
        self.table.blockSignals(False)
        self.message.setText("")
        self.refresh_verdicts()

    def choose(self, name: str, trust_remote_code: bool = False) -> None:
        model = self.project.model
        if (name, trust_remote_code) == (model.name, model.trust_remote_code):
            return
        model.name, model.trust_remote_code = name, trust_remote_code  # consent belongs to the folder asked about
        self.message.setText("")
        self.studio.edited()

    def _row_chosen(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows:
            self.choose(self.models[rows[0].row()].id)

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Model folder", str(self.project.folder))
        if folder:
            self.use_folder(Path(folder))

    def use_folder(self, folder: Path) -> bool:
        from studio.models import check_model_dir, needs_remote_code

        try:
            check_model_dir(folder)
        except StudioError as error:
            self.message.setText(str(error))
            return False
        code = needs_remote_code(folder)
        if code and not self.ask_remote_code(folder, code):
            self.message.setText(f"Not using {folder}: it needs its own Python code to load, and you chose not to "
                                 "run it.")
            return False
        self.table.clearSelection()
        self.choose(str(folder), trust_remote_code=bool(code))
        return True

    def ask_remote_code(self, folder: Path, code: list[str]) -> bool:
        """The explicit yes the project's model.trust_remote_code stands for; No is the default answer."""
        modules = ", ".join(sorted({ref.split(".")[0] + ".py" for ref in code}))
        answer = QMessageBox.question(
            self, "Run this model folder's own code?",
            f"The model folder\n{folder}\ncan only be loaded by running Python code that comes with it ({modules}). "
            "That code runs on this computer with your permissions, like any program you install.\n\n"
            "Run it? Answer Yes only if you trust where this folder came from.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def _use_hub_id(self) -> None:
        name = self.hub_id.text().strip()
        parts = name.split("/")
        if len(parts) != 2 or not all(parts):
            self.message.setText(f"{name!r} is not a Hub id: it looks like owner/model, "
                                 "for example Qwen/Qwen2.5-1.5B-Instruct.")
            return
        entry = find(name)
        if entry is not None:
            self.table.selectRow(self.models.index(entry))
        else:
            self.table.clearSelection()
            self.choose(name)

    # --- what the choice means -------------------------------------------------------------------------
    def _check_local_copies(self) -> None:
        """Which catalog models are already downloaded (looks in the Hugging Face cache, off the GUI thread)."""
        if self._closed:
            return

        def work(progress, cancelled):
            return {m.id: on_this_computer(m) for m in self.models}

        self._local_task = Task(work, self)
        self._local_task.succeeded.connect(self._show_local_copies)
        self._local_task.start()

    def _show_local_copies(self, local: dict) -> None:
        self.local = local
        for row, model in enumerate(self.models):
            if not model.embedded:
                self.table.item(row, 5).setText("✓ downloaded" if local.get(model.id) else "downloads when needed")
        self.studio.readiness_changed.emit()

    def shutdown(self) -> None:
        self._closed = True
        if self._local_task is not None:
            self._local_task.wait(5000)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self.refresh_verdicts()  # the method, its settings or the GPU planned for may have changed meanwhile

    def refresh_verdicts(self) -> None:
        if not self.isVisible():
            return  # the Method page edits many times a second; this page catches up when shown
        gpu = planning_gpu(self.studio.gpu)
        for row, model in enumerate(self.models):
            try:
                status = status_of(estimate(model.config, self.project).total_bytes, gpu.free_bytes)
            except StudioError:
                status = ""
            word, color = FIT_WORDS.get(status, ("", "#888888"))
            item = self.table.item(row, 6)
            item.setText(word)
            item.setForeground(QColor(color))
        self.table.horizontalHeaderItem(6).setToolTip(f"Whether {self.project.method.method} training with the "
                                                      f"Method page's settings fits on {gpu.name}.")
        self._show_chosen(gpu)

    def _show_chosen(self, gpu) -> None:
        name = self.project.model.name
        entry = find(name)
        self.chosen_label.setText(f"Base model: {entry.name if entry else name}")
        self.verdict = None
        try:
            config = config_for(name, self.project)
        except StudioError as error:
            config, problem = None, str(error)
        else:
            problem = ("Not on this computer yet, so its size is unknown: it is downloaded when training starts "
                       "(this needs an internet connection).")
        if config is None:
            self.shape_label.setText(problem)
            self.verdict_label.setText("")
            return
        try:
            shape = shape_from_config(config)
            self.verdict = verdict(estimate(config, self.project), gpu)
        except StudioError as error:
            self.shape_label.setText(str(error))
            self.verdict_label.setText("")
            return
        facts = [f"{parameters_text(shape.total_params)} parameters", f"{shape.layers} layers",
                 f"hidden size {shape.hidden}", f"{shape.vocab:,}-token vocabulary", f"model type {shape.family}"]
        if entry is not None:
            facts += [f"licence {entry.license}", f"context {entry.context_length:,} tokens"]
        self.shape_label.setText(" · ".join(facts) + (f"\n{entry.note}" if entry and entry.note else ""))
        sentence = self.verdict.sentence
        if self.verdict.fixes:  # the fixes themselves are offered on the Method page, beside the controls
            sentence = sentence.rstrip(":") + " (the Method page offers them)."
        self.verdict_label.setText(f"With {self.project.method.method} and the Method page's settings: {sentence}")
        set_role(self.verdict_label, STATUS_ROLE.get(self.verdict.status, "hint"))

    def readiness(self):
        name = self.project.model.name
        if not name:
            return False, "choose a base model"
        entry = find(name)
        return True, entry.name if entry else Path(name).name or name
