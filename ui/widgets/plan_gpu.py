"""Which GPU the estimate is judged against: the one this computer has, or a size the user plans for.

People plan on laptops without an NVIDIA GPU too ("will this fit on a 12 GB card?"), so with no GPU the
verdict is given against a chosen size. The choice is a view preference (kept in QSettings, like the
theme), not a training setting: `ftstudio plan --gpu-gb N` gives the same answer."""
from __future__ import annotations

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import QComboBox

from studio import units
from studio.plan import GpuInfo, planned_gpu

SIZES_GB = (8, 12, 16, 24, 48, 80)
DEFAULT_GB = 24
DETECTED = "detected"


def planned_size() -> str:
    """The saved choice: "detected" or a size in GB, as text."""
    value = str(QSettings().value("plan_for_gpu", DETECTED))
    return value if value == DETECTED or value.isdigit() else DETECTED


def set_planned_size(value: str) -> None:
    QSettings().setValue("plan_for_gpu", value)


def planning_gpu(detected: GpuInfo | None, choice: str) -> GpuInfo:
    """The GPU to judge against: the detected one when chosen and present, else a GPU of the chosen size."""
    if choice == DETECTED and detected is not None and detected.available:
        return detected
    return planned_gpu(int(choice) if choice.isdigit() else DEFAULT_GB)


class PlanForCombo(QComboBox):
    """"This computer's GPU" (when there is one) or a size; emits `changed` with the choice."""

    changed = Signal(str)

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
        index = self.findData(planned_size())
        if index < 0:  # "detected" chosen but no GPU here: plan for the default size
            index = self.findData(str(DEFAULT_GB))
        self.setCurrentIndex(index)
        self.blockSignals(False)

    def _chosen(self) -> None:
        self.changed.emit(self.currentData())
