"""Stage 1: the base model — from the catalog, a folder on this computer, or a Hugging Face Hub id — with its
size and the planner's verdict for the chosen method on this GPU (or the GPU size being planned for)."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QAbstractItemView, QFileDialog, QFrame, QHBoxLayout, QHeaderView, QLabel, QLineEdit,
                               QMessageBox, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout)

from studio import units
from studio.catalog import find, list_models, on_this_computer
from studio.errors import StudioError
from studio.hub import is_hub_id
from studio.plan import estimate, judge_on_cpu
from studio.plan.cpu import SENSIBLE_WORDS
from studio.plan.fit import status_of
from studio.vocabulary import METHODS
from ui.context import touches
from ui.pages import Page
from ui.tasks import Task
from ui.theme import role_label
from ui.widgets.vram_panel import STATUS_ROLE, set_role

COLUMNS = ("Model", "Size", "Licence", "Context", "Chat template", "On this computer", "Fits?")
FIT_WORDS = {"fits": ("fits", "#2bb673"), "tight": ("tight", "#e0a800"), "does_not_fit": ("too big", "#e74c3c")}
# Without a GPU the run is judged on this computer's RAM and CPU (studio.plan.cpu): other words, same colours.
CPU_WORDS = {"fits": ("fine on this CPU", "#2bb673"), "tight": ("tight in RAM", "#e0a800"),
             "slow": ("too slow on a CPU", "#e0a800"), "does_not_fit": ("too big for RAM", "#e74c3c")}


class ModelPage(Page):
    title = "Model"
    icon = "model.svg"

    def __init__(self, studio):
        super().__init__(studio)
        self.models = list_models()
        self.local: dict[str, bool] = {m.id: m.embedded for m in self.models}  # downloaded already?
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 16, 16, 16)
        layout.setSpacing(10)
        heading = role_label("heading", "Base model")
        hint = role_label("hint", "The model you fine-tune. Catalog models are sized without a download; the "
                                  "weights are fetched from the Hugging Face Hub once, when training first needs them.")
        hint.setWordWrap(True)
        layout.addWidget(heading)
        layout.addWidget(hint)
        self.cpu_note = role_label("warn")  # which models are sensible when there is no GPU to train on
        self.cpu_note.setWordWrap(True)
        self.cpu_note.hide()
        layout.addWidget(self.cpu_note)
        self.table = self._build_table()
        layout.addWidget(self.table, 1)
        layout.addLayout(self._build_other_sources())
        self.message = role_label("bad")
        self.message.setWordWrap(True)
        layout.addWidget(self.message)
        layout.addWidget(self._build_details())
        self.table.itemSelectionChanged.connect(self._row_chosen)
        studio.plan_changed.connect(self.refresh_verdicts)
        studio.busy_changed.connect(lambda busy: self.setEnabled(not busy))
        self._local_task = None
        self._closed = False
        QTimer.singleShot(0, self._check_local_copies)  # once the window is on screen
        self.view_changed(studio.expert)

    def view_changed(self, expert: bool) -> None:
        """Simple view: which model, its size and whether it works here; the chat template is an expert's column."""
        self.table.setColumnHidden(COLUMNS.index("Chat template"), not expert)
        if self.isVisible():
            self.refresh_verdicts()

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

    def project_changed(self, keys) -> None:
        if touches(keys, "model."):
            self.load_project()

    @property
    def verdict(self):
        return self.studio.plan.verdict

    def choose(self, name: str, trust_remote_code: bool = False) -> None:
        model = self.project.model
        if (name, trust_remote_code) == (model.name, model.trust_remote_code):
            return
        self.message.setText("")
        # consent belongs to the folder asked about: another model resets it
        self.studio.apply({"model.name": name, "model.trust_remote_code": trust_remote_code})

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
        if not is_hub_id(name):
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

        self._local_task = Task(work, self, on_success=self._show_local_copies).start()

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
        gpu = self.studio.plan.gpu
        on_cpu = not gpu.available
        ram = (gpu.total_bytes, gpu.free_bytes)
        for row, model in enumerate(self.models):
            try:
                est = estimate(model.config, self.project)
                status = judge_on_cpu(est, ram).status if on_cpu else status_of(est.total_bytes, gpu.free_bytes)
            except StudioError:
                status = ""
            word, color = (CPU_WORDS if on_cpu else FIT_WORDS).get(status, ("", "#888888"))
            item = self.table.item(row, 6)
            item.setText(word)
            item.setForeground(QColor(color))
        self.table.horizontalHeaderItem(6).setToolTip(
            f"Whether {self.project.method.method} training with the Method page's settings "
            + (f"works on this computer's CPU and RAM (no NVIDIA GPU found). {SENSIBLE_WORDS}" if on_cpu
               else f"fits on {gpu.name}."))
        self.cpu_note.setText(SENSIBLE_WORDS + " The Method page can also plan for a GPU of a size you choose."
                              if on_cpu else "")
        self.cpu_note.setVisible(on_cpu)
        self._show_chosen(gpu)

    def _show_chosen(self, gpu) -> None:
        name = self.project.model.name
        entry = find(name)
        self.chosen_label.setText(f"Base model: {entry.name if entry else name}")
        plan = self.studio.plan
        if plan.estimate is None:
            self.shape_label.setText(plan.problem or "Not on this computer yet, so its size is unknown: it is "
                                     "downloaded when training starts (this needs an internet connection).")
            self.verdict_label.setText("")
            return
        shape = plan.estimate.shape
        facts = [f"{units.parameters(shape.total_params)} parameters", f"{shape.layers} layers"]
        if self.studio.expert:  # the shape in a model's own terms; Simple view keeps to its size
            facts += [f"hidden size {shape.hidden}", f"{shape.vocab:,}-token vocabulary",
                      f"model type {shape.family}"]
        if entry is not None:
            facts += [f"licence {entry.license}", f"context {entry.context_length:,} tokens"]
        self.shape_label.setText(" · ".join(facts) + (f"\n{entry.note}" if entry and entry.note else ""))
        sentence = plan.verdict.sentence
        if plan.verdict.fixes:  # the fixes themselves are offered on the Method page, beside the controls
            sentence = sentence.rstrip(":") + " (the Method page offers them)."
        method = METHODS[self.project.method.method].label
        self.verdict_label.setText(f"With {method} and the Method page's settings: {sentence}")
        set_role(self.verdict_label, STATUS_ROLE.get(plan.verdict.status, "hint"))

    def readiness(self):
        name = self.project.model.name
        if not name:
            return False, "choose a base model"
        entry = find(name)
        return True, entry.name if entry else Path(name).name or name
