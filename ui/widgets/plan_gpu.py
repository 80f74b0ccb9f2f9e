"""Which GPU the estimate is judged against: the one this computer has, or a size the user plans for.

By default the run is judged by what will really happen on this computer: its GPU, or without one its RAM and
CPU (studio.plan.cpu). Planning for a card of some size ("will this fit on a 12 GB card?") is an explicit
choice in the same list. The choice is a view preference (kept in QSettings, like the theme), not a training
setting: `ftstudio plan` and `ftstudio plan --gpu-gb N` give the same answers."""
from __future__ import annotations

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import QComboBox

from studio import units
from studio.plan import GpuInfo, planned_gpu, this_cpu

SIZES_GB = (8, 12, 16, 24, 48, 80)
DETECTED = "detected"


def planned_size() -> str:
    """The saved choice: "detected" or a size in GB, as text."""
    value = str(QSettings().value("plan_for_gpu", DETECTED))
    return value if value == DETECTED or value.isdigit() else DETECTED


def set_planned_size(value: str) -> None:
    QSettings().setValue("plan_for_gpu", value)


def planning_gpu(detected: GpuInfo | None, choice: str) -> GpuInfo:
    """What to judge against: this computer (its GPU, or its CPU and RAM without one), or a GPU of the chosen
    size. Before detection has answered, this computer counts as CPU-only: never an imaginary card."""
    if choice.isdigit():
        return planned_gpu(int(choice))
    if detected is not None and detected.available:
        return detected
    return this_cpu()


class PlanForCombo(QComboBox):
    """"This computer" (its GPU, or its CPU) or a GPU size to plan for; emits `changed` with the choice."""

    changed = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setToolTip("What the estimate is judged against: this computer, or a GPU of the size you plan to "
                        "train on (another computer, a rented one).")
        self.set_detected(None)
        self.currentIndexChanged.connect(self._chosen)

    def set_detected(self, gpu: GpuInfo | None) -> None:
        self.blockSignals(True)
        self.clear()
        if gpu is not None and gpu.available:
            self.addItem(f"This computer: {gpu.name} ({units.memory(gpu.total_bytes, 0)})", DETECTED)
        else:
            ram = this_cpu().total_bytes
            self.addItem(f"This computer (CPU, {units.memory(ram, 0)} RAM)" if ram else "This computer (CPU)",
                         DETECTED)
        for size in SIZES_GB:
            self.addItem(f"Plan for a {size} GB GPU", str(size))
        self.setCurrentIndex(max(0, self.findData(planned_size())))
        self.blockSignals(False)

    def _chosen(self) -> None:
        self.changed.emit(self.currentData())
