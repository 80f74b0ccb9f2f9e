"""Stage 3: the method and its settings, with the live VRAM estimate."""
from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QFormLayout, QLabel, QSpinBox

from studio.project import METHODS
from ui.pages import Page


class MethodPage(Page):
    title = "Method"
    icon = "method.svg"

    def __init__(self, studio):
        super().__init__(studio)
        form = QFormLayout(self)
        self.method = QComboBox()
        self.method.addItems(METHODS)
        self.rank = QSpinBox(minimum=1, maximum=1024)
        self.rank.setToolTip("LoRA rank: the size of the trained matrices. Raise it before giving up on LoRA.")
        self.batch = QSpinBox(minimum=1, maximum=512)
        self.cutoff = QSpinBox(minimum=16, maximum=131072, singleStep=128)
        self.cutoff.setToolTip("Sequence-length cutoff: longer examples are cut to this many tokens.")
        self.estimate_label = QLabel()
        self.estimate_label.setWordWrap(True)
        for label, widget in (("Method:", self.method), ("LoRA rank:", self.rank), ("Batch size:", self.batch),
                              ("Cutoff (tokens):", self.cutoff), ("GPU memory:", self.estimate_label)):
            form.addRow(label, widget)
        for widget in (self.rank, self.batch, self.cutoff):
            widget.valueChanged.connect(self._changed)
        self.method.currentTextChanged.connect(self._changed)
        studio.gpu_detected.connect(lambda gpu: self._update_estimate())
        self._loading = False

    def load_project(self) -> None:
        self._loading = True
        self.method.setCurrentText(self.project.method.method)
        self.rank.setValue(self.project.method.rank)
        self.batch.setValue(self.project.train.batch_size)
        self.cutoff.setValue(self.project.train.max_seq_len)
        self._loading = False
        self._update_estimate()

    def _changed(self) -> None:
        if self._loading:
            return
        self.project.method.method = self.method.currentText()
        self.project.method.rank = self.rank.value()
        self.project.method.alpha = 2 * self.rank.value()
        self.project.train.batch_size = self.batch.value()
        self.project.train.max_seq_len = self.cutoff.value()
        self.studio.edited()
        self._update_estimate()

    def _update_estimate(self) -> None:
        from studio.models import config_if_ready
        from studio.plan import estimate, gpu_from_numbers, verdict

        config = config_if_ready(self.project.model.name)
        if config is None:
            self.estimate_label.setText("The estimate appears once the base model is on this computer.")
            return
        result = estimate(config, self.project)
        gpu = self.studio.gpu or gpu_from_numbers("", 0)
        self.estimate_label.setText(f"{result.total_bytes / 2**30:.2f} GB estimated. {verdict(result, gpu).sentence}")
