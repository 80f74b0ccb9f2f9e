"""A spin box for small numbers such as learning rates, shown as 2e-04 rather than 0.000200."""
from __future__ import annotations

from PySide6.QtGui import QValidator
from PySide6.QtWidgets import QDoubleSpinBox


class ScientificSpinBox(QDoubleSpinBox):
    """Arrows multiply or divide by about 2 (1e-4 -> 2e-4 -> 5e-4 ...), the steps people actually try."""

    def __init__(self, minimum: float = 1e-7, maximum: float = 1.0, parent=None):
        super().__init__(parent)
        self.setDecimals(12)
        self.setRange(minimum, maximum)

    def textFromValue(self, value: float) -> str:  # noqa: N802 - Qt's name
        return f"{value:.1e}".replace("e-0", "e-")

    def valueFromText(self, text: str) -> float:  # noqa: N802 - Qt's name
        try:
            return float(text)
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int):
        try:
            value = float(text)
        except ValueError:
            return QValidator.State.Intermediate, text, pos
        ok = self.minimum() <= value <= self.maximum()
        return (QValidator.State.Acceptable if ok else QValidator.State.Intermediate), text, pos

    def stepBy(self, steps: int) -> None:  # noqa: N802 - Qt's name
        ladder = [m * 10.0 ** e for e in range(-7, 1) for m in (1, 2, 5)]
        value = self.value()
        index = min(range(len(ladder)), key=lambda i: abs(ladder[i] - value))
        index = max(0, min(len(ladder) - 1, index + steps))
        self.setValue(ladder[index])
