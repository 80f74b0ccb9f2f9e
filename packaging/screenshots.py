"""Screenshots of every page of the real window, with real content, into docs/screenshots/.

It trains the embedded model on the pirate sample for a few steps, exports it, then opens the window on that
project, asks the Test page a held-out question, and grabs each page (light theme; the Method page in dark too).
Run: python packaging/screenshots.py   (offscreen: needs no display; about 3 minutes on 2 CPU cores)"""
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PySide6.QtWidgets import QApplication  # noqa: E402

from studio.demo import demo_project  # noqa: E402
from studio.export import export_run  # noqa: E402
from studio.train import run_training  # noqa: E402
from ui import theme  # noqa: E402
from ui.app import MainWindow  # noqa: E402
from ui.pages.test import TestPage  # noqa: E402

OUT = ROOT / "docs" / "screenshots"


def wait_until(app: QApplication, condition, timeout_s: float = 300) -> None:
    deadline = time.time() + timeout_s
    while not condition():
        if time.time() > deadline:
            raise TimeoutError("the window did not get there in time")
        app.processEvents()
        time.sleep(0.02)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="ftstudio-shots-"))
    project = demo_project(work, steps=24)
    project.path = work / "pirate-demo.ftproj.toml"
    print("training 24 steps on the embedded model…", flush=True)
    run_dir, final = run_training(project)
    assert final and final["type"] == "done", final
    print("exporting…", flush=True)
    export_run(run_dir, ["f16", "q8_0"])

    app = QApplication([])
    theme.apply("light")
    window = MainWindow(project)
    window.resize(1280, 820)
    window.show()
    for row, page in enumerate(window.page_list):
        window.stages.setCurrentRow(row)
        if isinstance(page, TestPage):
            wait_until(app, lambda: len(page.examples) > 0 and not page.generating)
            page._example_clicked(page.held_out.item(0))  # as a click on the first held-out example
            wait_until(app, lambda: not page.generating)
        settle(app)
        window.grab().save(str(OUT / f"{row + 1}-{page.title.lower()}.png"))
    window.stages.setCurrentRow(2)
    theme.apply("dark")
    settle(app)
    window.grab().save(str(OUT / "3-method-dark.png"))
    window.studio.dirty = False
    window.close()
    print(f"saved {len(window.page_list) + 1} screenshots to {OUT}")


def settle(app: QApplication, seconds: float = 3.0) -> None:
    """Let background tasks (file inspection, token counts, GPU query) finish and the page repaint."""
    end = time.time() + seconds
    while time.time() < end:
        app.processEvents()
        time.sleep(0.02)


if __name__ == "__main__":
    main()
