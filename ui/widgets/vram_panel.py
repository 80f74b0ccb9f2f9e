"""The panel beside the method settings: estimate, stacked bar against the GPU, legend, verdict, and the
one-click changes that would make the run fit. It only draws; the page decides what a click changes."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout

from studio import units
from ui.theme import role_label
from ui.widgets.plan_gpu import PlanForCombo
from ui.widgets.vram_bar import VramBar, VramLegend

STATUS_ROLE = {"fits": "good", "tight": "warn", "slow": "warn", "does_not_fit": "bad", "no_gpu": "hint"}


def set_role(label: QLabel, role: str) -> None:
    """Change a label's theme role (good / warn / bad / hint) and let the style sheet recolour it."""
    if label.property("role") != role:
        label.setProperty("role", role)
        label.style().unpolish(label)
        label.style().polish(label)


class VramPanel(QFrame):
    fix_chosen = Signal(dict)  # the settings change of the fix the user clicked
    plain_words = True  # Simple view: the fixes' plain words (the page sets it on a view change)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setFixedWidth(400)
        column = QVBoxLayout(self)
        column.setContentsMargins(14, 14, 14, 14)
        column.setSpacing(8)
        self.heading = role_label("heading", "GPU memory")
        column.addWidget(self.heading)
        plan_row = QHBoxLayout()
        plan_row.addWidget(QLabel("Judge against:"))
        self.plan_for = PlanForCombo()
        plan_row.addWidget(self.plan_for, 1)
        column.addLayout(plan_row)
        self.estimate_label = QLabel()
        self.estimate_label.setStyleSheet("font-size: 15px; font-weight: 600;")
        column.addWidget(self.estimate_label)
        self.bar = VramBar()
        column.addWidget(self.bar)
        self.scale_label = role_label("hint")
        self.scale_label.setWordWrap(True)
        column.addWidget(self.scale_label)
        self.legend = VramLegend()
        column.addWidget(self.legend)
        self.verdict_label = QLabel()
        self.verdict_label.setWordWrap(True)
        column.addWidget(self.verdict_label)
        self.fix_box = QVBoxLayout()
        self.fix_box.setSpacing(6)
        column.addLayout(self.fix_box)
        self.fix_rows: list[QFrame] = []
        self.fix_buttons: list[QPushButton] = []
        self._shown_fixes: list = []
        self._changes: list[dict] = []
        self.auto_fit_button = QPushButton("Auto-fit batch size")
        self.auto_fit_button.setToolTip("The largest batch that fits, with gradient accumulation raised to keep "
                                        "the effective batch (batch × accumulation) where it is.")
        column.addWidget(self.auto_fit_button, 0, Qt.AlignmentFlag.AlignLeft)
        self.assumptions = role_label("hint")
        self.assumptions.setWordWrap(True)
        column.addWidget(self.assumptions)
        column.addStretch(1)

    def show_estimate(self, est, verdict, gpu) -> None:
        on_cpu = verdict is not None and verdict.on_cpu
        self.heading.setText("Memory on this computer (RAM)" if on_cpu else "GPU memory")
        # on the CPU there is no CUDA context but the program itself: the bar shows the same total the verdict
        # judges (studio.plan.cpu.ram_needed) against the computer's RAM
        from studio.plan.cpu import memory_parts
        listed = memory_parts(est, on_cpu)
        parts = [(key, n) for key, _, n in listed]
        need = sum(n for _, n in parts)
        self.estimate_label.setText(f"{units.memory(need, 2)} estimated" + (" (RAM)" if on_cpu else ""))
        self.bar.set_data(parts, gpu.total_bytes, gpu.free_bytes)
        self.scale_label.setText(
            f"Solid line: this computer's {units.memory(gpu.total_bytes, 0)} of RAM; dashed: what is available now."
            if on_cpu else f"Solid line: the GPU's {units.memory(gpu.total_bytes, 0)}; dashed: its free memory.")
        self.legend.set_parts(listed)
        self.verdict_label.setText(verdict.sentence)
        set_role(self.verdict_label, STATUS_ROLE.get(verdict.status, "hint"))
        self._show_fixes(verdict.fixes)
        self.auto_fit_button.setEnabled(not on_cpu)  # the largest batch that fits is a GPU question
        self.assumptions.setText(f"Trains {units.parameters(est.params_trainable)} of {units.parameters(est.params_total)} values. "
                                 "Hover here for the assumptions.")
        self.assumptions.setToolTip("\n".join(est.assumptions))

    def show_nothing(self, why: str) -> None:
        self.estimate_label.setText("No estimate yet")
        self.bar.set_data([], 0, 0)
        self.scale_label.setText("")
        self.legend.set_parts([])
        self.verdict_label.setText(why)
        set_role(self.verdict_label, "hint")
        self._show_fixes([])
        self.auto_fit_button.setEnabled(False)
        self.assumptions.setText("")
        self.assumptions.setToolTip("")

    def _show_fixes(self, fixes) -> None:
        """Rows are reused and only rewritten when the fixes change, so a slider move does not relayout."""
        shown = [((f.plain or f.label) if self.plain_words else f.label, f.change, f.new_total_bytes) for f in fixes]
        if shown == self._shown_fixes:
            return
        self._shown_fixes = shown
        while len(self.fix_rows) < len(fixes):
            self._add_fix_row()
        for i, row in enumerate(self.fix_rows):
            row.setVisible(i < len(fixes))
            if i < len(fixes):
                fix = fixes[i]
                row.findChild(QLabel).setText(f"{shown[i][0]}: {units.memory(fix.new_total_bytes)}")
                button = self.fix_buttons[i]
                button.setProperty("change_index", i)
                button.setToolTip("Changes " + ", ".join(f"{k} to {v}" for k, v in fix.change.items()))
        self._changes = [f.change for f in fixes]

    def _add_fix_row(self) -> None:
        index = len(self.fix_rows)
        row = QFrame()
        line = QHBoxLayout(row)
        line.setContentsMargins(0, 0, 0, 0)
        text = QLabel()
        text.setWordWrap(True)
        button = QPushButton("Apply")
        button.clicked.connect(lambda checked=False: self.fix_chosen.emit(dict(self._changes[index])))
        line.addWidget(text, 1)
        line.addWidget(button, 0, Qt.AlignmentFlag.AlignTop)
        self.fix_box.addWidget(row)
        self.fix_rows.append(row)
        self.fix_buttons.append(button)
