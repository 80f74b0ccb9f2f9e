"""Screenshots of every page of the real window, with real content, into docs/screenshots/.

It trains the embedded model on the pirate sample for a few steps, exports it, then opens the window on that
project at 1366x768 (a common laptop screen), asks the Test page a held-out question, and grabs each page in
both views (Simple, the default, and Expert) and both themes: `<n>-<page>-<simple|expert>[-dark].png`; and the
welcome a first start shows (`0-welcome[-dark].png`).
Run: python packaging/screenshots.py   (offscreen: needs no display; about 5 minutes on 2 CPU cores)"""
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
from studio.project import Project  # noqa: E402
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
    app.setOrganizationName("Fine-Tune Studio screenshots")  # the views chosen here stay out of the user's settings
    first_start = MainWindow(Project(name="my-model"), welcome=True)  # what ui.app.open_window shows first
    first_start.resize(1366, 768)
    first_start.show()
    saved = 0
    for dark in (False, True):
        theme.apply("dark" if dark else "light")
        settle(app, 1.0)
        first_start.grab().save(str(OUT / f"0-welcome{'-dark' if dark else ''}.png"))
        saved += 1
    first_start.studio.dirty = False
    first_start.close()

    window = MainWindow(project)
    window.resize(1366, 768)
    window.show()
    asked = False
    for dark in (False, True):
        theme.apply("dark" if dark else "light")
        for expert in (False, True):
            window.studio.set_expert(expert)
            for row, page in enumerate(window.page_list):
                window.stages.setCurrentRow(row)
                if isinstance(page, TestPage) and not asked:
                    wait_until(app, lambda: len(page.examples) > 0 and not page.generating)
                    page._example_clicked(page.held_out.item(0))  # as a click on the first held-out example
                    wait_until(app, lambda: not page.generating)
                    asked = True
                settle(app, 3.0 if saved < 2 + len(window.page_list) else 0.5)
                view = "expert" if expert else "simple"
                name = f"{row + 1}-{page.title.lower()}-{view}{'-dark' if dark else ''}.png"
                window.grab().save(str(OUT / name))
                saved += 1
    window.studio.dirty = False
    window.close()
    print(f"saved {saved} screenshots of {window.width()}x{window.height()} to {OUT}")


def settle(app: QApplication, seconds: float = 3.0) -> None:
    """Let background tasks (file inspection, token counts, GPU query) finish and the page repaint."""
    end = time.time() + seconds
    while time.time() < end:
        app.processEvents()
        time.sleep(0.02)


if __name__ == "__main__":
    main()
