"""Which GPU the estimate is judged against: the one this computer has, or a size the user plans for.

People plan on laptops without an NVIDIA GPU too ("will this fit on a 12 GB card?"), so with no GPU the
verdict is given against a chosen size. The choice is a view preference (kept in QSettings, like the
theme), not a training setting: `ftstudio plan --gpu-gb N` gives the same answer."""
from __future__ import annotations

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import QComboBox

from studio import units
from studio.plan import GpuInfo, gpu_from_numbers

SIZES_GB = (8, 12, 16, 24, 48, 80)
DEFAULT_GB = 24
DETECTED = "detected"


_choice: list[str] = []  # the saved choice, read once: the estimate asks for it on every change


def planned_size() -> str:
    """"detected" or a size in GB, as text."""
    if not _choice:
        value = str(QSettings().value("plan_for_gpu", DETECTED))
        _choice.append(value if value == DETECTED or value.isdigit() else DETECTED)
    return _choice[0]


def set_planned_size(value: str) -> None:
    QSettings().setValue("plan_for_gpu", value)
    _choice[:] = [value]


def planning_gpu(detected: GpuInfo | None) -> GpuInfo:
    """The GPU to judge against: the detected one when chosen and present, else a GPU of the chosen size."""
    choice = planned_size()
    if choice == DETECTED and detected is not None and detected.available:
        return detected
    size = int(choice) if choice.isdigit() else DEFAULT_GB
    return gpu_from_numbers(f"a {size} GB GPU", size * units.GiB)


class PlanForCombo(QComboBox):
    """"This computer's GPU" (when there is one) or a size; emits `changed` after saving the choice."""

    changed = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setToolTip("The GPU the estimate is judged against. Without an NVIDIA GPU here, pick the size of "
                        "the card you plan to train on.")
        self.set_detected(None)
        self.currentIndexChanged.connect(self._chosen)

    def set_detected(self, gpu: GpuInfo | None) -> None:
        self.blockSignals(True)
        self.clear()
        if gpu is not None and gpu.available:
            self.addItem(f"This computer: {gpu.name} ({units.memory(gpu.total_bytes, 0)})", DETECTED)
        for size in SIZES_GB:
            self.addItem(f"A {size} GB GPU", str(size))
        choice = planned_size()
        index = self.findData(choice)
        if index < 0:  # "detected" chosen but no GPU here: plan for the default size
            index = self.findData(str(DEFAULT_GB))
        self.setCurrentIndex(index)
        self.blockSignals(False)

    def _chosen(self) -> None:
        set_planned_size(self.currentData())
        self.changed.emit()
