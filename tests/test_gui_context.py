"""The window's shared model and its one way to run core work, in the real window, offscreen: a change goes
through the project's own rules and is announced once; the estimate is computed once per change for every
page; a failure is shown by default, a cancel keeps the core's words, a stale result is dropped; and the Test
page finds an export in a folder of the user's choosing."""
import threading
import time

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QCoreApplication, Qt  # noqa: E402

from studio.errors import Cancelled, ProjectError, StudioError  # noqa: E402
from studio.project import Project, save_project  # noqa: E402


@pytest.fixture
def window(qtbot, tmp_path):
    from ui.app import MainWindow
    from ui.widgets import plan_gpu

    QCoreApplication.setOrganizationName("Fine-Tune Studio tests")  # keep the user's own settings untouched
    plan_gpu.set_planned_size("24")
    opened = []

    def open_window(project: Project):
        if project.path is None:
            project.path = tmp_path / f"{project.name}.ftproj.toml"
        win = MainWindow(project)
        win.show()
        opened.append(win)
        return win

    yield open_window
    for win in opened:
        win.studio.dirty = False
        win.close()


def test_apply_validates_announces_once_and_the_pages_follow(window, qtbot):
    from ui.pages.method import MethodPage
    from ui.pages.model import ModelPage

    win = window(Project(name="evented"))
    studio, method = win.studio, win.page(MethodPage)
    changes, plans = [], []
    studio.changed.connect(changes.append)
    studio.plan_changed.connect(lambda: plans.append(studio.plan))
    with pytest.raises(ProjectError, match="train.batch_size = 0"):
        studio.apply({"train.max_seq_len": 256, "train.batch_size": 0})
    assert (changes, plans, studio.dirty) == ([], [], False) and studio.project.train.max_seq_len == 1024
    studio.apply({"train.max_seq_len": 256, "train.batch_size": 8})
    assert changes == [frozenset({"train.max_seq_len", "train.batch_size"})] and len(plans) == 1 and studio.dirty
    assert (method.cutoff.value(), method.batch.value()) == (256, 8)  # another page's change reaches the controls
    assert method.estimate is studio.plan.estimate and win.page(ModelPage).verdict is studio.plan.verdict
    assert plans[0].estimate.settings.batch_size == 8
    studio.apply({"data.system_prompt": "Be brief."})  # the memory plan does not depend on it
    assert len(plans) == 1 and len(changes) == 2


def test_tasks_show_failures_keep_the_cancel_sentence_and_drop_stale_results(window, qtbot):
    from ui.tasks import Latest, Task

    win = window(Project(name="tasks"))
    # the start-up GPU query writes the status bar when it ends: let it end first, so it cannot hide the failure
    qtbot.waitUntil(lambda: win.studio.gpu is not None, timeout=60_000)

    def fail(progress, cancelled):
        raise StudioError("The file is locked by another program.")

    Task(fail, win).start()  # nobody shows it: the window does
    qtbot.waitUntil(lambda: "locked" in win.statusBar().currentMessage(), timeout=10_000)

    said = []

    def cancel_with_words(progress, cancelled):
        raise Cancelled("Export cancelled; finished ones kept: tiny-F16.gguf.")

    Task(cancel_with_words, win, on_cancel=said.append).start()
    qtbot.waitUntil(lambda: bool(said), timeout=10_000)
    assert said == ["Export cancelled; finished ones kept: tiny-F16.gguf."]

    results, finished, gate = [], [], threading.Event()

    def slow(progress, cancelled):
        gate.wait(10)
        return "stale"

    latest = Latest(win)
    first = latest.start(Task(slow, win, on_success=results.append, on_finish=lambda: finished.append(1)))
    latest.start(Task(lambda progress, cancelled: "fresh", win, on_success=results.append))
    gate.set()
    qtbot.waitUntil(lambda: not latest.alive and not first.is_running(), timeout=10_000)
    QCoreApplication.processEvents()
    assert results == ["fresh"] and finished == [] and latest.current is None


def test_streamed_items_arrive_in_order_and_a_cancel_closes_the_stream(window, qtbot):
    from ui.tasks import Task

    win = window(Project(name="stream"))
    closed, items, notes = threading.Event(), [], []

    def pieces(progress, cancelled):
        progress("loading the model…", 0.0)

        def gen():
            try:
                for i in range(1000):
                    time.sleep(0.005)
                    yield i
            finally:
                closed.set()
        return gen()

    task = Task(pieces, win, stream=True, on_item=items.append, on_progress=lambda m, f: notes.append(m),
                on_cancel=notes.append).start()
    qtbot.waitUntil(lambda: len(items) >= 5, timeout=10_000)
    task.cancel()
    qtbot.waitUntil(lambda: closed.is_set() and not task.is_running(), timeout=10_000)
    QCoreApplication.processEvents()
    assert items == list(range(len(items))) and len(items) < 1000
    assert notes[0] == "loading the model…" and notes[-1] == "Cancelled."


@pytest.mark.slow
def test_the_test_page_chats_with_an_export_in_a_folder_of_its_own(window, qtbot, tmp_path, tiny_model_dir):
    """The Export page writes into [export] output_dir; the Test page must find the GGUF there (it used to look
    only in the run folder's export/ and fell back to the unexported weights)."""
    from studio.train.runs import create_run
    from ui.pages.export import ExportPage
    from ui.pages.test import TestPage

    project = Project(name="tiny")
    project.model.name = str(tiny_model_dir)
    project.export.quant = ["f16"]
    project.export.output_dir = "my ggufs"  # relative to the project's folder, as the Export page stores it
    save_project(project, tmp_path / "tiny.ftproj.toml")
    run = create_run(project)
    (run / "model").mkdir()  # a full fine-tune's weights: the tiny model itself
    for path in tiny_model_dir.iterdir():
        (run / "model" / path.name).symlink_to(path)
    win = window(project)
    assert win.studio.run_dir == run
    test = win.page(TestPage)
    win.go_to(TestPage)
    assert "Your trained model (run" in test.tuned.source.text()  # Simple view's words

    export = win.page(ExportPage)
    win.go_to(ExportPage)
    qtbot.waitUntil(export.export_button.isEnabled, timeout=120_000)
    qtbot.mouseClick(export.export_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: export.task is None, timeout=300_000)
    written = tmp_path / "my ggufs" / "tiny-F16.gguf"
    assert export.result is not None and export.result.files == {"f16": written}, export.status.text()
    assert not (run / "export").exists()

    win.go_to(TestPage)
    assert test.tuned.source.text().startswith("Your exported file (tiny-F16.gguf)")
    win.studio.set_expert(True)
    assert test.tuned.source.text() == "Exported GGUF in llama.cpp: tiny-F16.gguf"
    win.studio.set_expert(False)
    assert test.readiness() == (True, "GGUF ready to chat")
    qtbot.keyClicks(test.prompt, "Ahoy?")
    qtbot.keyClick(test.prompt, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not test.generating, timeout=300_000)
    assert test.tuned.pieces >= 2, test.tuned.view.toPlainText()  # llama.cpp answered from that file
    assert ("gguf", str(written)) in test.chats
