"""Save a screenshot of every page of the main window into docs/screenshots/ (offscreen, no display needed).
Run: QT_QPA_PLATFORM=offscreen python packaging/screenshots.py"""
import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PySide6.QtWidgets import QApplication  # noqa: E402

from studio.demo import SAMPLE  # noqa: E402
from studio.project import Project  # noqa: E402
from ui.app import STAGES, MainWindow  # noqa: E402

out = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
out.mkdir(parents=True, exist_ok=True)
app = QApplication([])
project = Project(name="pirate-demo")
project.data.train_file = str(SAMPLE)
window = MainWindow(project)
window.show()
for row, stage in enumerate(STAGES):
    window.stages.setCurrentRow(row)
    app.processEvents()
    window.grab().save(str(out / f"{row + 1}-{stage.lower()}.png"))
print(f"saved {len(STAGES)} screenshots to {out}")
