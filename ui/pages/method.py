"""Stage 3: the method and its settings, beside a live picture of the GPU memory they need.

Every control changes the project through `studio.apply`. The estimate is pure arithmetic over the model's
config, computed once per change by the shared Studio (ui.context), so it is redrawn with no visible lag."""
from __future__ import annotations

from dataclasses import fields

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QFrame, QGroupBox,
                               QHBoxLayout, QLabel, QLineEdit, QPushButton, QRadioButton, QScrollArea, QSpinBox,
                               QVBoxLayout, QWidget)

from studio.errors import StudioError
from studio.plan import ADVICE, auto_fit
from studio.plan.advice import CPU_METHOD_SUFFIX, SIMPLE_METHODS, SIMPLE_SETTINGS
from studio.presets import list_presets, preset_changes
from studio.project import MAX_SEQ_LEN, PRECISIONS, SCHEDULERS, TrainSettings
from studio.vocabulary import METHODS, OPTIMIZERS
from ui.pages import Page
from ui.theme import role_label
from ui.widgets.sci_spin import ScientificSpinBox
from ui.widgets.vram_panel import VramPanel, set_role

# Words for trainer switches; a switch added to TrainSettings later still shows, named after its field.
SWITCH_NAMES = {"packing": "Packing (no time spent on padding)",
                "lean_loss": "Chunked loss (less memory, same result)",
                "offload_checkpoints": "Offload checkpoints to CPU memory"}
EXPLICIT_TRAIN = {"epochs", "max_steps", "learning_rate", "lr_scheduler", "warmup_ratio", "weight_decay",
                  "batch_size", "grad_accumulation", "max_seq_len", "seed", "gradient_checkpointing", "optimizer",
                  "precision", "logging_steps", "eval_steps", "save_steps"}


def first_sentence(text: str) -> str:
    end = text.find(". ")
    return text if end < 0 else text[:end + 1]


def humanize(name: str) -> str:
    return name.replace("_", " ").capitalize()


class VerticalScroll(QScrollArea):
    """Scrolls up and down only: the page is as wide as the view, so nothing is cut at the right and moving
    the focus to a field (Qt scrolls it into view) never shifts the page sideways."""

    def __init__(self, widget: QWidget):
        super().__init__()
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # the hints wrap instead
        self.setWidget(widget)
        self.horizontalScrollBar().valueChanged.connect(lambda value: value and self.horizontalScrollBar().setValue(0))


class MethodPage(Page):
    title = "Method"
    icon = "method.svg"

    def __init__(self, studio):
        super().__init__(studio)
        self._loading = False
        self.controls: dict[str, QWidget] = {}  # "train.batch_size" -> its control
        self.labels: dict[str, QLabel] = {}  # "train.batch_size" -> the label beside it
        self.simple_hints: dict[str, QLabel] = {}  # the Simple view's line under the few settings it shows
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
        self.scroll = VerticalScroll(self.settings_panel)
        layout.addWidget(self.scroll, 1)
        self.panel = VramPanel()
        self.panel.plan_for.changed.connect(studio.set_planned_size)
        self.panel.fix_chosen.connect(self.apply_fix)
        self.panel.auto_fit_button.clicked.connect(self.auto_fit_batch)
        self.disk_label = role_label("hint")  # will the run finish: disk space, beside the memory verdict
        self.disk_label.setWordWrap(True)
        self.panel.layout().insertWidget(self.panel.layout().count() - 1, self.disk_label)
        layout.addWidget(self.panel)
        studio.plan_changed.connect(self.show_plan)
        studio.gpu_detected.connect(self._gpu_detected)
        studio.busy_changed.connect(self._busy)
        # the parts of the memory picture only an expert reads (CUDA context, allocator, the assumptions)
        self.expert_only(self.panel.legend, self.panel.assumptions, self.panel.auto_fit_button)
        self.view_changed(studio.expert)

    def _busy(self, busy: bool) -> None:
        """While training or exporting, nothing here may change the settings the run was started with."""
        self.settings_panel.setEnabled(not busy)
        self.panel.setEnabled(not busy)

    # --- building ------------------------------------------------------------------------------------
    def _build_presets(self) -> QVBoxLayout:
        column = QVBoxLayout()
        column.setSpacing(4)
        column.addWidget(QLabel("Start from a preset:"))
        row = QHBoxLayout()
        column.addLayout(row)
        self.preset_buttons = {}
        for preset in list_presets():
            button = QPushButton(preset.name)
            button.setToolTip(preset.description)
            button.clicked.connect(lambda checked=False, name=preset.name: self.apply_preset(name))
            row.addWidget(button)
            self.preset_buttons[preset.name] = button
        row.addStretch(1)
        return column

    def _build_methods(self) -> QGroupBox:
        box = QGroupBox("Method")
        grid = QVBoxLayout(box)
        grid.setSpacing(4)
        self.method_group = QButtonGroup(self)
        self.method_buttons: dict[str, QRadioButton] = {}
        self.method_hints: dict[str, QLabel] = {}
        for method, facts in METHODS.items():
            button = QRadioButton(facts.label)
            button.setToolTip(facts.advice)
            hint = role_label("hint", first_sentence(facts.advice))
            hint.setWordWrap(True)
            hint.setContentsMargins(24, 0, 0, 6)
            hint.setToolTip(facts.advice)
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
        self._simple_hint(form, "method.rank")
        alpha_label = self._label("Alpha:", ADVICE["alpha"])
        form.addRow(alpha_label, alpha_row)
        self._bind(self.alpha, "method.alpha", ADVICE["alpha"])
        self._row(form, "Dropout:", self.dropout, "method.dropout", ADVICE["dropout"])
        self._row(form, "Target layers:", self.targets, "method.target_modules", ADVICE["target_modules"])
        self.alpha_auto.toggled.connect(self._alpha_auto_toggled)
        self.expert_only(alpha_label, self.alpha, self.alpha_auto, self.labels["method.dropout"], self.dropout,
                         self.labels["method.target_modules"], self.targets)
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
        self.cutoff = QSpinBox(minimum=MAX_SEQ_LEN[0], maximum=MAX_SEQ_LEN[1], singleStep=128)  # the project's range
        self.cutoff.setGroupSeparatorShown(True)
        self.checkpointing = QCheckBox("Gradient checkpointing (less memory, about 30 % slower)")
        self.optimizer = QComboBox()
        self.optimizer.addItems(OPTIMIZERS)
        self._row(form, "Learning rate:", self.learning_rate, "train.learning_rate", ADVICE["learning_rate"])
        self._row(form, "Epochs:", self.epochs, "train.epochs", ADVICE["epochs"])
        self._simple_hint(form, "train.epochs")
        self._row(form, "Max steps:", self.max_steps, "train.max_steps", ADVICE["max_steps"])
        self._row(form, "Batch size:", self.batch, "train.batch_size", ADVICE["batch"])
        self._row(form, "Gradient accumulation:", self.accumulation, "train.grad_accumulation",
                  ADVICE["batch"])
        self._row(form, "Cutoff (tokens):", self.cutoff, "train.max_seq_len", ADVICE["cutoff"])
        self._simple_hint(form, "train.max_seq_len")
        self.cutoff.setToolTip(f"{ADVICE['cutoff']} Allowed: {MAX_SEQ_LEN[0]:,} to {MAX_SEQ_LEN[1]:,} tokens.")
        self._row(form, "Optimizer:", self.optimizer, "train.optimizer", ADVICE["optimizer"])
        form.addRow(self.checkpointing)  # a switch spans the form: its words need the width, not a label column
        self._bind(self.checkpointing, "train.gradient_checkpointing", ADVICE["gradient_checkpointing"])
        switches = [self.checkpointing]
        # Trainer switches added to TrainSettings over time (packing, ...) appear here without a code change.
        for f in fields(TrainSettings):
            if isinstance(f.default, bool) and f.name not in EXPLICIT_TRAIN:
                box_ = QCheckBox(SWITCH_NAMES.get(f.name, humanize(f.name)))
                form.addRow(box_)
                self._bind(box_, f"train.{f.name}", ADVICE.get(f.name, ""))
                switches.append(box_)
        # Simple view: how long to train and the cutoff; the rest keep the project's (the preset's) values
        self.expert_only(*switches, *(item for key in ("train.learning_rate", "train.max_steps",
                                                       "train.batch_size", "train.grad_accumulation",
                                                       "train.optimizer")
                                      for item in (self.labels[key], self.controls[key])))
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
        self._row(form, "Learning-rate schedule:", scheduler, "train.lr_scheduler", ADVICE["lr_scheduler"])
        self._row(form, "Warm-up share:", warmup, "train.warmup_ratio", ADVICE["warmup_ratio"])
        self._row(form, "Weight decay:", decay, "train.weight_decay", ADVICE["weight_decay"])
        self._row(form, "Precision:", precision, "train.precision", ADVICE["precision"])
        self._row(form, "Seed:", seed, "train.seed", ADVICE["seed"])
        devices = QComboBox(editable=True)  # "auto", a number, or a list typed as [0, 1]
        devices.addItems(["auto", "1", "2", "4", "8"])
        self._row(form, "GPUs:", devices, "train.devices", ADVICE["devices"])
        self.expert_only(box)
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
        label = self._label(text, tip)
        label.setProperty("expert_text", text)
        self.labels[key] = label
        form.addRow(label, widget)
        self._bind(widget, key, tip)

    def _simple_hint(self, form: QFormLayout, key: str) -> None:
        """The Simple view's one line under a setting it shows (hidden in Expert view, where the tooltip says more)."""
        hint = role_label("hint", SIMPLE_SETTINGS[key][1])
        hint.setWordWrap(True)
        self.simple_hints[key] = hint
        form.addRow("", hint)

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
        """Every control from the project, and the alpha link (after New / Open, a preset or a fix)."""
        self.project_changed(frozenset(self.controls) | {"method.method"})
        self._loading = True
        self.alpha_auto.setChecked(self.project.method.alpha == 2 * self.project.method.rank)
        self.alpha.setEnabled(not self.alpha_auto.isChecked())
        self._loading = False
        self.show_plan()

    def project_changed(self, keys) -> None:
        """The controls of the settings that changed, here or elsewhere (the Data page's cutoff, a fix)."""
        self._loading = True
        try:
            p = self.project
            if "method.method" in keys:
                self.method_buttons[p.method.method].setChecked(True)
                self.adapter_box.setEnabled(not METHODS[p.method.method].trains_base)
                self._show_method_words()
            for key in keys & self.controls.keys():
                section, _, name = key.partition(".")
                value, widget = getattr(getattr(p, section), name), self.controls[key]
                if isinstance(widget, QCheckBox):
                    widget.setChecked(bool(value))
                elif isinstance(widget, QComboBox):
                    widget.setCurrentText(str(value))
                elif isinstance(widget, QLineEdit):
                    widget.setText(", ".join(value))
                else:
                    widget.setValue(value)
        finally:
            self._loading = False

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
        self._apply(change)

    def _set(self, key: str, value) -> None:
        if not self._loading:
            self._apply({key: value})

    def _apply(self, change: dict) -> bool:
        """Change the project; the controls follow (project_changed), or say why the value is refused."""
        try:
            self.studio.apply(change)
        except StudioError as error:
            self.message.setText(str(error))
            return False
        self.message.setText("")
        return True

    def _alpha_auto_toggled(self, on: bool) -> None:
        self.alpha.setEnabled(not on)
        if on and not self._loading:
            self._apply({"method.alpha": 2 * self.project.method.rank})

    def apply_preset(self, name: str) -> None:
        if self._apply(preset_changes(self.project, name)):
            self.load_project()

    def apply_fix(self, change: dict) -> None:
        if self._apply(change):
            self.load_project()

    def auto_fit_batch(self) -> None:
        plan = self.studio.plan
        if plan.config is None:
            return
        change = auto_fit(plan.config, self.project, plan.gpu)
        if not change:
            self.message.setText("Even a batch of 1 does not fit this GPU: use one of the changes listed "
                                 "under the memory bar, or a smaller model.")
            return
        self.apply_fix(change)

    # --- the estimate --------------------------------------------------------------------------------
    def _gpu_detected(self, gpu) -> None:
        self.panel.plan_for.set_detected(gpu)
        self._show_method_words()

    # --- Simple / Expert view ------------------------------------------------------------------------
    def view_changed(self, expert: bool) -> None:
        """Plain words and the few settings a first run needs (Simple), or every setting by its name (Expert)."""
        self.adapter_box.setTitle("Adapter (LoRA, QLoRA, DoRA)" if expert else "The add-on it trains")
        for key, label in self.labels.items():
            simple = SIMPLE_SETTINGS.get(key)
            label.setText(label.property("expert_text") if expert or simple is None else simple[0])
        for hint in self.simple_hints.values():
            hint.setVisible(not expert)
        self._show_method_words()
        self.panel.plain_words = not expert
        self.show_plan()

    def _show_method_words(self) -> None:
        """The methods' names and one-line hints; Simple view shows the plain first-run choices, plus the
        project's own method when it is another one (so the choice never disappears)."""
        expert = self.studio.expert
        gpu = self.studio.gpu
        no_gpu = gpu is None or not gpu.available
        current = self.project.method.method
        for name, facts in METHODS.items():
            simple = SIMPLE_METHODS.get(name)
            label, hint = (facts.label, first_sentence(facts.advice)) if expert or simple is None else simple
            if facts.quantized_base and no_gpu:  # bitsandbytes quantization: fast on NVIDIA GPUs, slow on a CPU
                note = CPU_METHOD_SUFFIX.strip("()")
                hint += f" {note[0].upper()}{note[1:]}."
            self.method_buttons[name].setText(label)
            self.method_hints[name].setText(hint)
            shown = expert or simple is not None or name == current
            self.method_buttons[name].setVisible(shown)
            self.method_hints[name].setVisible(shown)

    @property
    def estimate(self):
        return self.studio.plan.estimate

    @property
    def verdict(self):
        return self.studio.plan.verdict

    def show_plan(self) -> None:
        plan = self.studio.plan
        if plan.estimate is None:
            self.panel.show_nothing(plan.problem or "The estimate appears once the base model is on this "
                                    "computer, or when you pick a model from the catalog.")
        else:
            self.panel.show_estimate(plan.estimate, plan.verdict, plan.gpu)
        self.show_disk(plan.config)

    def show_disk(self, config: dict | None) -> None:
        """Will the run finish: the disk it needs on each drive, and how long it takes (studio.plan.disk)."""
        from studio.plan.disk import duration_sentence, forecast_disk

        if config is None:
            self.disk_label.setText("")
            return
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
        name = METHODS[self.project.method.method].label
        if self.verdict is None:
            return True, name
        if self.verdict.status == "does_not_fit":
            return False, f"{name}: does not fit"
        return True, f"{name}: {self.verdict.status.replace('_', ' ')}"
