"""Stage 3: the method and its settings, beside a live picture of the GPU memory they need.

Every control writes straight into the project. The estimate is pure arithmetic over the model's config
(fetched once per model, never per change), so it is redrawn on every change with no visible lag."""
from __future__ import annotations

from dataclasses import fields

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QFrame, QGroupBox,
                               QHBoxLayout, QLabel, QLineEdit, QPushButton, QRadioButton, QScrollArea, QSpinBox,
                               QVBoxLayout, QWidget)

from studio.errors import StudioError
from studio.plan import ADVICE, METHOD_ADVICE, auto_fit, verdict
from studio.plan.advice import CPU_METHOD_SUFFIX
from studio.plan.multigpu import gpu_count, plan_on_gpus
from studio.presets import apply_changes, apply_preset, list_presets
from studio.project import METHODS, OPTIMIZERS, PRECISIONS, SCHEDULERS, TrainSettings
from ui.pages import Page
from ui.theme import role_label
from ui.widgets.plan_gpu import planning_gpu
from ui.widgets.sci_spin import ScientificSpinBox
from ui.widgets.vram_panel import VramPanel, set_role

METHOD_NAMES = {"full": "Full fine-tuning", "lora": "LoRA", "qlora": "QLoRA (4-bit base)",
                "lora8bit": "LoRA on an 8-bit base", "dora": "DoRA"}
NEEDS_GPU = {"qlora", "lora8bit"}  # bitsandbytes quantization: fast on NVIDIA GPUs, slow on a CPU
# Plain-word explanations for the settings the planner's advice does not cover.
TIPS = {
    "dropout": "Dropout switches off a random share of the adapter's inputs while training, so it cannot "
               "memorize. 0.05 is usual; 0 for very large datasets, 0.1 for very small ones.",
    "target_modules": "Which layers get an adapter. \"all-linear\" (every linear layer of every block) learns "
                      "best; a comma-separated list such as q_proj, v_proj trains fewer values.",
    "epochs": "How many times training goes through the whole dataset. 1-3 is usual; more risks memorizing.",
    "max_steps": "Stop after this many optimizer steps whatever the epochs say (0: use the epochs). "
                 "Handy for a quick test.",
    "grad_accumulation": ADVICE["batch"],
    "packing": "Puts several short examples into one row instead of padding them: no compute is spent on "
               "padding, and the examples still cannot see each other.",
    "lr_scheduler": "How the learning rate changes over the run: cosine and linear slowly lower it to zero "
                    "after a short warm-up, which usually ends with a lower loss.",
    "warmup_ratio": "The share of the run at the start during which the learning rate climbs from zero, so "
                    "the first, noisy steps do not damage the model.",
    "weight_decay": "Pulls trained values gently towards zero. 0 is usual for LoRA; 0.01-0.1 for full "
                    "fine-tuning.",
    "precision": "The number format of training. auto picks bf16 on GPUs that support it, else fp16 or fp32.",
    "seed": "The random seed: the same seed, data and settings give the same run.",
    "devices": "Which GPUs train: auto uses every GPU of this computer, a number that many, a list such as "
               "[0, 1] those ones. On several, each trains on its share of every batch (same result, faster); "
               "a model too big for one GPU is split across them.",
}
# Words for trainer switches; a switch added to TrainSettings later still shows, named after its field.
SWITCH_NAMES = {"packing": "Packing (no compute spent on padding)",
                "lean_loss": "Chunked loss (never holds all the logits at once)",
                "offload_checkpoints": "Offload checkpoints to CPU memory (with gradient checkpointing)"}
EXPLICIT_TRAIN = {"epochs", "max_steps", "learning_rate", "lr_scheduler", "warmup_ratio", "weight_decay",
                  "batch_size", "grad_accumulation", "max_seq_len", "seed", "gradient_checkpointing", "optimizer",
                  "precision", "logging_steps", "eval_steps", "save_steps"}


def first_sentence(text: str) -> str:
    end = text.find(". ")
    return text if end < 0 else text[:end + 1]


def humanize(name: str) -> str:
    return name.replace("_", " ").capitalize()


class MethodPage(Page):
    title = "Method"
    icon = "method.svg"

    def __init__(self, studio):
        super().__init__(studio)
        self._loading = False
        self._config_name: str | None = None
        self._config: dict | None = None
        self._config_problem = ""
        self.estimate = None
        self.verdict = None
        self.controls: dict[str, QWidget] = {}  # "train.batch_size" -> its control
        layout = QHBoxLayout(self)
        layout.setContentsMargins(16, 16, 16, 16)
        layout.setSpacing(16)
        self.settings_panel = QWidget()
        column = QVBoxLayout(self.settings_panel)
        column.setContentsMargins(0, 0, 8, 0)
        column.setSpacing(12)
        heading = role_label("heading", "Method and settings")
        column.addWidget(heading)
        column.addLayout(self._build_presets())
        column.addWidget(self._build_methods())
        column.addWidget(self._build_adapter())
        column.addWidget(self._build_training())
        column.addWidget(self._build_advanced())
        self.message = role_label("bad")
        self.message.setWordWrap(True)
        column.addWidget(self.message)
        column.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # the hints wrap instead
        scroll.setWidget(self.settings_panel)
        layout.addWidget(scroll, 1)
        self.panel = VramPanel()
        self.panel.plan_for.changed.connect(self.update_estimate)
        self.panel.fix_chosen.connect(self.apply_fix)
        self.panel.auto_fit_button.clicked.connect(self.auto_fit_batch)
        self.disk_label = role_label("hint")  # will the run finish: disk space, beside the memory verdict
        self.disk_label.setWordWrap(True)
        self.panel.layout().insertWidget(self.panel.layout().count() - 1, self.disk_label)
        layout.addWidget(self.panel)
        studio.project_edited.connect(self.update_estimate)
        studio.gpu_detected.connect(self._gpu_detected)
        studio.busy_changed.connect(self._busy)

    def _busy(self, busy: bool) -> None:
        """While training or exporting, nothing here may change the settings the run was started with."""
        self.settings_panel.setEnabled(not busy)
        self.panel.setEnabled(not busy)

    # --- building ------------------------------------------------------------------------------------
    def _build_presets(self) -> QHBoxLayout:
        row = QHBoxLayout()
        row.addWidget(QLabel("Start from a preset:"))
        self.preset_buttons = {}
        for preset in list_presets():
            button = QPushButton(preset.name)
            button.setToolTip(preset.description)
            button.clicked.connect(lambda checked=False, name=preset.name: self.apply_preset(name))
            row.addWidget(button)
            self.preset_buttons[preset.name] = button
        row.addStretch(1)
        return row

    def _build_methods(self) -> QGroupBox:
        box = QGroupBox("Method")
        grid = QVBoxLayout(box)
        grid.setSpacing(4)
        self.method_group = QButtonGroup(self)
        self.method_buttons: dict[str, QRadioButton] = {}
        self.method_hints: dict[str, QLabel] = {}
        for method in METHODS:
            button = QRadioButton(METHOD_NAMES.get(method, method))
            button.setToolTip(METHOD_ADVICE.get(method, ""))
            hint = role_label("hint", first_sentence(METHOD_ADVICE.get(method, "")))
            hint.setWordWrap(True)
            hint.setContentsMargins(24, 0, 0, 6)
            hint.setToolTip(METHOD_ADVICE.get(method, ""))
            self.method_group.addButton(button)
            self.method_buttons[method] = button
            self.method_hints[method] = hint
            button.toggled.connect(lambda on, m=method: on and self._set("method.method", m))
            grid.addWidget(button)
            grid.addWidget(hint)
        return box

    def _build_adapter(self) -> QGroupBox:
        self.adapter_box = QGroupBox("Adapter (LoRA, QLoRA, DoRA)")
        form = self._form(self.adapter_box)
        self.rank = QSpinBox(minimum=1, maximum=1024)
        self.alpha = QSpinBox(minimum=1, maximum=4096)
        self.alpha_auto = QCheckBox("2 × rank")
        self.alpha_auto.setToolTip("Keep alpha at twice the rank as the rank changes.")
        self.dropout = QDoubleSpinBox(minimum=0.0, maximum=0.9, singleStep=0.05, decimals=2)
        self.targets = QLineEdit()
        self.targets.setPlaceholderText("all-linear")
        alpha_row = QHBoxLayout()
        alpha_row.addWidget(self.alpha, 1)
        alpha_row.addWidget(self.alpha_auto)
        self._row(form, "Rank:", self.rank, "method.rank", ADVICE["rank"])
        form.addRow(self._label("Alpha:", ADVICE["alpha"]), alpha_row)
        self._bind(self.alpha, "method.alpha", ADVICE["alpha"])
        self._row(form, "Dropout:", self.dropout, "method.dropout", TIPS["dropout"])
        self._row(form, "Target layers:", self.targets, "method.target_modules", TIPS["target_modules"])
        self.alpha_auto.toggled.connect(self._alpha_auto_toggled)
        return self.adapter_box

    def _build_training(self) -> QGroupBox:
        box = QGroupBox("Training")
        form = self._form(box)
        self.learning_rate = ScientificSpinBox()
        self.epochs = QDoubleSpinBox(minimum=0.0, maximum=1000.0, singleStep=0.5, decimals=1)
        self.max_steps = QSpinBox(minimum=0, maximum=10_000_000, singleStep=10)
        self.max_steps.setSpecialValueText("use the epochs")
        self.batch = QSpinBox(minimum=1, maximum=512)
        self.accumulation = QSpinBox(minimum=1, maximum=1024)
        self.cutoff = QSpinBox(minimum=16, maximum=131072, singleStep=128)
        self.checkpointing = QCheckBox("Gradient checkpointing (less memory, about 30 % slower)")
        self.optimizer = QComboBox()
        self.optimizer.addItems(OPTIMIZERS)
        self._row(form, "Learning rate:", self.learning_rate, "train.learning_rate", ADVICE["learning_rate"])
        self._row(form, "Epochs:", self.epochs, "train.epochs", TIPS["epochs"])
        self._row(form, "Max steps:", self.max_steps, "train.max_steps", TIPS["max_steps"])
        self._row(form, "Batch size:", self.batch, "train.batch_size", ADVICE["batch"])
        self._row(form, "Gradient accumulation:", self.accumulation, "train.grad_accumulation",
                  TIPS["grad_accumulation"])
        self._row(form, "Cutoff (tokens):", self.cutoff, "train.max_seq_len", ADVICE["cutoff"])
        self._row(form, "Optimizer:", self.optimizer, "train.optimizer", ADVICE["optimizer"])
        form.addRow("", self.checkpointing)
        self._bind(self.checkpointing, "train.gradient_checkpointing", ADVICE["gradient_checkpointing"])
        # Trainer switches added to TrainSettings over time (packing, ...) appear here without a code change.
        for f in fields(TrainSettings):
            if isinstance(f.default, bool) and f.name not in EXPLICIT_TRAIN:
                box_ = QCheckBox(SWITCH_NAMES.get(f.name, humanize(f.name)))
                form.addRow("", box_)
                self._bind(box_, f"train.{f.name}", ADVICE.get(f.name) or TIPS.get(f.name, ""))
        return box

    def _build_advanced(self) -> QGroupBox:
        box = QGroupBox("Advanced")
        form = self._form(box)
        scheduler, precision = QComboBox(), QComboBox()
        scheduler.addItems(SCHEDULERS)
        precision.addItems(PRECISIONS)
        warmup = QDoubleSpinBox(minimum=0.0, maximum=0.5, singleStep=0.01, decimals=2)
        decay = QDoubleSpinBox(minimum=0.0, maximum=1.0, singleStep=0.01, decimals=3)
        seed = QSpinBox(minimum=0, maximum=2 ** 31 - 1)
        self._row(form, "Learning-rate schedule:", scheduler, "train.lr_scheduler", TIPS["lr_scheduler"])
        self._row(form, "Warm-up share:", warmup, "train.warmup_ratio", TIPS["warmup_ratio"])
        self._row(form, "Weight decay:", decay, "train.weight_decay", TIPS["weight_decay"])
        self._row(form, "Precision:", precision, "train.precision", TIPS["precision"])
        self._row(form, "Seed:", seed, "train.seed", TIPS["seed"])
        devices = QComboBox(editable=True)  # "auto", a number, or a list typed as [0, 1]
        devices.addItems(["auto", "1", "2", "4", "8"])
        self._row(form, "GPUs:", devices, "train.devices", TIPS["devices"])
        return box

    def _form(self, box: QGroupBox) -> QFormLayout:
        form = QFormLayout(box)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setContentsMargins(12, 16, 12, 12)
        form.setHorizontalSpacing(12)
        form.setVerticalSpacing(8)
        return form

    def _label(self, text: str, tip: str) -> QLabel:
        label = QLabel(text)
        label.setToolTip(tip)
        return label

    def _row(self, form: QFormLayout, text: str, widget: QWidget, key: str, tip: str) -> None:
        form.addRow(self._label(text, tip), widget)
        self._bind(widget, key, tip)

    def _bind(self, widget: QWidget, key: str, tip: str) -> None:
        widget.setToolTip(tip)
        self.controls[key] = widget
        if isinstance(widget, QCheckBox):
            widget.toggled.connect(lambda *_: self._control_changed(key))
        elif isinstance(widget, QComboBox):
            widget.currentTextChanged.connect(lambda *_: self._control_changed(key))
        elif isinstance(widget, QLineEdit):
            widget.editingFinished.connect(lambda: self._control_changed(key))
        else:
            widget.valueChanged.connect(lambda *_: self._control_changed(key))

    # --- project <-> controls ------------------------------------------------------------------------
    def load_project(self) -> None:
        self._loading = True
        try:
            p = self.project
            self.method_buttons[p.method.method].setChecked(True)
            for key, widget in self.controls.items():
                section, _, name = key.partition(".")
                value = getattr(getattr(p, section), name)
                if isinstance(widget, QCheckBox):
                    widget.setChecked(bool(value))
                elif isinstance(widget, QComboBox):
                    widget.setCurrentText(str(value))
                elif isinstance(widget, QLineEdit):
                    widget.setText(", ".join(value))
                else:
                    widget.setValue(value)
            self.alpha_auto.setChecked(p.method.alpha == 2 * p.method.rank)
            self.alpha.setEnabled(not self.alpha_auto.isChecked())
            self.adapter_box.setEnabled(p.method.method != "full")
        finally:
            self._loading = False
        self.update_estimate()

    def _value(self, key: str):
        widget = self.controls[key]
        if isinstance(widget, QCheckBox):
            return widget.isChecked()
        if isinstance(widget, QComboBox):
            return widget.currentText()
        if isinstance(widget, QLineEdit):
            return [t.strip() for t in widget.text().split(",") if t.strip()] or ["all-linear"]
        return widget.value()

    def _control_changed(self, key: str) -> None:
        if self._loading:
            return
        change = {key: self._value(key)}
        if key == "method.rank" and self.alpha_auto.isChecked():
            change["method.alpha"] = 2 * change[key]
        self._set_many(change)

    def _set(self, key: str, value) -> None:
        if not self._loading:
            self._set_many({key: value})

    def _set_many(self, change: dict, reload: bool = False) -> bool:
        """Write a change into the project; the controls follow when something else than one control moved."""
        try:
            apply_changes(self.project, change)
        except StudioError as error:
            self.message.setText(str(error))
            return False
        self.message.setText("")
        if reload or "method.method" in change:
            self.load_project()
        elif "method.alpha" in change:  # the rank moved alpha with it
            self._loading = True
            self.alpha.setValue(self.project.method.alpha)
            self._loading = False
        self.studio.edited()
        return True

    def _alpha_auto_toggled(self, on: bool) -> None:
        self.alpha.setEnabled(not on)
        if on and not self._loading:
            self._set_many({"method.alpha": 2 * self.project.method.rank})

    def apply_preset(self, name: str) -> None:
        apply_preset(self.project, name)
        self.load_project()
        self.studio.edited()

    def apply_fix(self, change: dict) -> None:
        self._set_many(change, reload=True)

    def auto_fit_batch(self) -> None:
        if self._config is None:
            return
        gpu = planning_gpu(self.studio.gpu)
        change = auto_fit(self._config, self.project, gpu)
        if not change:
            self.message.setText("Even a batch of 1 does not fit this GPU: use one of the changes listed "
                                 "under the memory bar, or a smaller model.")
            return
        self._set_many(change, reload=True)

    # --- the estimate --------------------------------------------------------------------------------
    def _gpu_detected(self, gpu) -> None:
        self.panel.plan_for.set_detected(gpu)
        for method in NEEDS_GPU:  # on the button, not the wrapped hint: a longer hint would need a relayout
            note = "" if gpu is not None and gpu.available else "  " + CPU_METHOD_SUFFIX
            self.method_buttons[method].setText(METHOD_NAMES[method] + note)
        self.update_estimate()

    def model_config(self) -> dict | None:
        """The base model's config, read once per model name (a catalog entry, a folder, or the Hub cache)."""
        from studio.catalog import config_for

        name = self.project.model.name
        if name != self._config_name:
            self._config_name, self._config, self._config_problem = name, None, ""
            try:
                self._config = config_for(name, self.project)
            except StudioError as error:
                self._config_problem = str(error)
        return self._config

    def update_estimate(self) -> None:
        config = self.model_config()
        self.estimate = self.verdict = None
        if config is None:
            self.panel.show_nothing(self._config_problem or "The estimate appears once the base model is on this "
                                    "computer, or when you pick a model from the catalog.")
            return
        gpu = planning_gpu(self.studio.gpu)
        found = gpu_count() if self.studio.gpu is not None and self.studio.gpu.available else 0  # counted at start-up
        try:  # per GPU when the project trains on several
            self.estimate = plan_on_gpus(config, self.project, found, gpu.free_bytes if gpu.available else None)
        except StudioError as error:
            self.panel.show_nothing(str(error))
            return
        self.verdict = verdict(self.estimate, gpu, gpus=max(1, found))
        self.panel.show_estimate(self.estimate, self.verdict, gpu)
        self.show_disk(config)

    def show_disk(self, config: dict) -> None:
        from studio.plan.disk import duration_sentence, forecast_disk

        try:
            forecast = forecast_disk(self.project, config)
        except (StudioError, OSError) as error:
            self.disk_label.setText(str(error))
            return
        lines = forecast.sentences() + [line for line in [duration_sentence(self.project)] if line]
        self.disk_label.setText("\n".join(lines))
        set_role(self.disk_label, "hint" if forecast.fits else "bad")

    @property
    def estimate_label(self):
        return self.panel.estimate_label

    def readiness(self):
        name = METHOD_NAMES.get(self.project.method.method, self.project.method.method)
        if self.verdict is None:
            return True, name
        if self.verdict.status == "does_not_fit":
            return False, f"{name}: does not fit"
        return True, f"{name}: {self.verdict.status.replace('_', ' ')}"
