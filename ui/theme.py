"""Light and dark themes on Qt's Fusion style. "system" follows the desktop's colour scheme (Qt 6.5+)."""
from __future__ import annotations

from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication, QLabel

THEMES = ("system", "light", "dark")
ACCENT = "#2f7de1"
# Plot colours shared by every chart, so train/eval/estimate mean the same colour everywhere.
COLORS = {"train": "#2f7de1", "eval": "#e8833a", "estimate": "#8a8f98", "measured": "#2bb673", "lr": "#9b59b6",
          "grad": "#c0392b", "speed": "#16a085"}

_STYLE = """
QListWidget#stages { border: none; padding: 8px 4px; font-size: 13px; }
QListWidget#stages::item { padding: 8px 6px; border-radius: 6px; }
QListWidget#stages::item:selected { background: %(accent)s; color: white; }
QLabel[role="heading"] { font-size: 18px; font-weight: 600; }
QLabel[role="hint"] { color: %(hint)s; }
QLabel[role="good"] { color: #2bb673; font-weight: 600; }
QLabel[role="warn"] { color: #e0a800; font-weight: 600; }
QLabel[role="bad"] { color: #e74c3c; font-weight: 600; }
QGroupBox { font-weight: 600; margin-top: 12px; }
QGroupBox::title { subcontrol-origin: margin; left: 8px; padding: 0 4px; }
"""


# Fusion draws radio and check indicators with an outline a shade darker than the window: invisible on a
# dark window, so the dark theme draws its own.
_DARK_INDICATORS = """
QRadioButton::indicator, QCheckBox::indicator { width: 13px; height: 13px; border: 1px solid #8a8f98;
    background: #1e1f22; }
QRadioButton::indicator { border-radius: 7px; }
QRadioButton::indicator:checked { background: qradialgradient(cx:0.5, cy:0.5, radius:0.5, fx:0.5, fy:0.5,
    stop:0 %(accent)s, stop:0.55 %(accent)s, stop:0.65 #1e1f22, stop:1 #1e1f22); border-color: %(accent)s; }
QCheckBox::indicator:checked { background: %(accent)s; border-color: %(accent)s; }
QRadioButton::indicator:disabled, QCheckBox::indicator:disabled { border-color: #4a4d52; }
"""


def role_label(role: str, text: str = "") -> QLabel:
    """A label the style sheet colours by its role: heading, hint, good, warn or bad."""
    label = QLabel(text)
    label.setProperty("role", role)
    return label


def saved_choice() -> str:
    value = QSettings().value("theme", "system")
    return value if value in THEMES else "system"


def is_dark(choice: str) -> bool:
    if choice == "system":
        hints = QGuiApplication.styleHints()
        return hasattr(hints, "colorScheme") and hints.colorScheme() == Qt.ColorScheme.Dark
    return choice == "dark"


def apply(choice: str) -> None:
    app = QApplication.instance()
    QSettings().setValue("theme", choice)
    app.setStyle("Fusion")
    dark = is_dark(choice)
    app.setPalette(_dark_palette() if dark else app.style().standardPalette())
    style = _STYLE + (_DARK_INDICATORS if dark else "")
    app.setStyleSheet(style % {"accent": ACCENT, "hint": "#9aa0a6" if dark else "#6b7078"})
    app.setProperty("dark_theme", dark)


def _dark_palette() -> QPalette:
    p = QPalette()
    base, window, text = QColor("#1e1f22"), QColor("#2b2d31"), QColor("#e6e6e6")
    for role, color in ((QPalette.ColorRole.Window, window), (QPalette.ColorRole.WindowText, text),
                        (QPalette.ColorRole.Base, base), (QPalette.ColorRole.AlternateBase, window),
                        (QPalette.ColorRole.Text, text), (QPalette.ColorRole.Button, window),
                        (QPalette.ColorRole.ButtonText, text), (QPalette.ColorRole.ToolTipBase, window),
                        (QPalette.ColorRole.ToolTipText, text), (QPalette.ColorRole.Highlight, QColor(ACCENT)),
                        (QPalette.ColorRole.HighlightedText, QColor("white")),
                        (QPalette.ColorRole.PlaceholderText, QColor("#8a8f98"))):
        p.setColor(role, color)
    p.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor("#6b7078"))
    p.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor("#6b7078"))
    return p
