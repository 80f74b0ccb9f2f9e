"""The whole app, driven like a user would, offscreen: every page, a worker that fails and says why, a real
training run stopped and resumed with the loss plot filling up, an export from the Export page, and both
models answering on the Test page. A 10 ms timer on the GUI thread measures the worst stall meanwhile."""
import time

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt, QTimer  # noqa: E402

from studio.project import Project  # noqa: E402
from ui.app import MainWindow  # noqa: E402
from ui.pages.export import ExportPage  # noqa: E402
from ui.pages.test import TestPage  # noqa: E402
from ui.pages.train import TrainPage  # noqa: E402

STEPS = 12
MAX_STALL_S = 0.100
LONG = 300_000  # ms: a worker start imports torch, slow on a busy 2-core CI machine


class StallMeter:
    """Ticks every 10 ms on the GUI thread; the longest gap between ticks is the worst freeze a user saw."""

    def __init__(self):
        self.worst = 0.0
        self.last = None
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)

    def _tick(self):
        now = time.perf_counter()
        if self.last is not None:
            self.worst = max(self.worst, now - self.last)
        self.last = now

    def start(self):
        self.last = None
        self.timer.start()

    def stop(self):
        self.timer.stop()


def tiny_project(tmp_path, model_dir, data) -> Project:
    project = Project(name="flow")
    project.evaluate.after_training = project.evaluate.after_export = False  # checked in test_evaluate.py
    project.model.name = str(model_dir)
    project.data.train_file = str(data)
    project.data.system_prompt = "You are a pirate."
    project.train.max_steps = STEPS
    project.train.max_seq_len = 128
    project.train.save_steps = 2
    project.train.eval_steps = 4
    project.train.learning_rate = 1e-3
    project.export.quant = ["f16", "q8_0"]
    project.path = tmp_path / "flow.ftproj.toml"
    return project


def ask(qtbot, test, question):
    """Type a question, press Enter, and see both answers arrive piece by piece."""
    qtbot.keyClicks(test.prompt, question)
    qtbot.keyClick(test.prompt, Qt.Key.Key_Return)
    assert test.generating
    qtbot.waitUntil(lambda: not test.generating, timeout=LONG)
    for pane in (test.tuned, test.base):
        # A tiny random model's words are gibberish or blank lines: what matters is that they stream in.
        assert pane.pieces >= 2, pane.view.toPlainText()
        assert f"You: {question}" in pane.view.toPlainText()


def wait_idle(qtbot, train):
    qtbot.waitUntil(lambda: not train.running and train.process is None, timeout=LONG)


@pytest.mark.slow
def test_train_stop_resume_export_and_chat(qtbot, tmp_path, tiny_model_dir, sample_data):
    window = MainWindow(tiny_project(tmp_path, tiny_model_dir, sample_data))
    qtbot.addWidget(window)
    window.show()
    for row, page in enumerate(window.page_list):  # every page opens and says whether it is ready
        window.stages.setCurrentRow(row)
        assert window.pages.currentWidget() is page
        ready, line = page.readiness()
        assert isinstance(ready, bool) and isinstance(line, str)
    train = window.page(TrainPage)
    window.go_to(TrainPage)

    # A worker that cannot run explains itself in plain words, and the app carries on.
    data = window.studio.project.data.train_file
    window.studio.project.data.train_file = str(tmp_path / "moved-away.jsonl")
    train.start_training()
    wait_idle(qtbot, train)
    assert "moved-away.jsonl" in train.problem_text.text()
    assert train.start_button.isEnabled()
    window.studio.project.data.train_file = data

    meter = StallMeter()
    meter.start()
    train.start_training()
    assert not train.start_button.isEnabled() and train.stop_button.isEnabled()
    qtbot.waitUntil(lambda: train.plots.points >= 2, timeout=LONG)
    train.stop_training()
    wait_idle(qtbot, train)
    state = train.state
    assert state.stopped and 2 <= state.step < STEPS, state.describe()
    assert train.resume_button.isEnabled()
    assert "Stopped and saved" in train.status.text()

    # Resume, then close the window mid-run: shutdown() (what closing calls after the user agrees) stops
    # the worker cleanly, saving a checkpoint, so the run can be resumed again.
    train.resume_training()
    qtbot.waitUntil(lambda: train.plots.points >= state.step + 2, timeout=LONG)
    meter.stop()
    process = train.process
    train.shutdown()  # asks the worker to save and stop, and returns at once
    wait_idle(qtbot, train)
    assert process.returncode == 0
    assert train.state.stopped and train.state.resumable, train.state.describe()

    meter.start()
    train.resume_training()
    wait_idle(qtbot, train)
    meter.stop()
    assert train.state.finished, train.state.describe()
    train.plots.redraw()
    steps, losses = train.plots.raw_curve.getData()
    assert list(steps) == list(range(1, STEPS + 1))  # one loss point per step, across the stop and resume
    assert len(train.plots.eval.steps) >= 1
    assert train.progress.value() == 100
    assert not train.resume_button.isEnabled()
    print(f"\nworst GUI stall while training: {meter.worst * 1000:.0f} ms")
    assert meter.worst < MAX_STALL_S, f"the GUI thread stalled {meter.worst * 1000:.0f} ms"

    # The run picker re-plots a past run from its events.jsonl: the failed one shows its problem, no charts.
    finished_run = window.studio.run_dir
    assert train.runs.count() == 2
    train.runs.setCurrentIndex(1 - train.runs.findData(str(finished_run)))
    assert train.state.error is not None and train.plots.points == 0
    assert not train.problem.isHidden() and not train.resume_button.isEnabled()
    train.runs.setCurrentIndex(train.runs.findData(str(finished_run)))
    assert window.studio.run_dir == finished_run and train.plots.points == STEPS and train.problem.isHidden()

    # Before any export the Test page talks to the trained adapter on its base, through transformers.
    test = window.page(TestPage)
    window.go_to(TestPage)
    assert "not exported yet" in test.tuned.source.text()
    ask(qtbot, test, "Hello?")

    # Export f16 and q8_0 from the Export page.
    export = window.page(ExportPage)
    window.go_to(ExportPage)
    assert export.quants == ["f16", "q8_0"]
    qtbot.waitUntil(export.export_button.isEnabled, timeout=LONG)
    assert "MB" in export.quant_boxes["q8_0"].text()  # the expected size is shown beside the type
    # Cancel at once: the merge stops at its next step, and nothing is left under a final name.
    qtbot.mouseClick(export.export_button, Qt.MouseButton.LeftButton)
    assert export.cancel_button.isEnabled() and not export.export_button.isEnabled()
    qtbot.mouseClick(export.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: export.task is None, timeout=LONG)
    assert "cancelled" in export.status.text() and export.result is None
    leftovers = [p for p in tmp_path.rglob("*") if p.suffix == ".gguf" or p.name.endswith(".partial")
                 or p.name == "merged"]
    assert not leftovers, leftovers
    qtbot.waitUntil(export.export_button.isEnabled, timeout=LONG)
    qtbot.mouseClick(export.export_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: export.task is None, timeout=LONG)
    assert export.result is not None, export.status.text()
    for quant in ("f16", "q8_0"):
        path = export.result.files[quant]
        assert path.is_file() and path.stat().st_size > 1_000_000 and path.suffix == ".gguf"
    assert export.files.rowCount() == 2 and export.open_button.isEnabled()

    # The Test page now uses the exported GGUF in llama.cpp, against the base model, both streamed.
    window.go_to(TestPage)
    assert "Your exported file (" in test.tuned.source.text()  # Simple view: the GGUF, in words
    qtbot.waitUntil(lambda: len(test.examples) > 0, timeout=60_000)  # held-out rows of the eval split
    ask(qtbot, test, "Where is the treasure?")
    first = test.held_out.visualItemRect(test.held_out.item(0)).center()
    qtbot.mouseClick(test.held_out.viewport(), Qt.MouseButton.LeftButton, pos=first)
    assert test.examples[0].reference in test.reference.text()
    qtbot.waitUntil(lambda: not test.generating, timeout=LONG)
    window.studio.dirty = False
    window.close()


def test_out_of_memory_is_explained_and_its_fix_goes_into_the_project(qtbot, tmp_path, tiny_model_dir, sample_data):
    from studio.train.worker import explain_oom

    project = tiny_project(tmp_path, tiny_model_dir, sample_data)
    project.train.batch_size, project.train.grad_accumulation = 8, 1
    window = MainWindow(project)
    qtbot.addWidget(window)
    train = window.page(TrainPage)
    message, fix = explain_oom(project)  # the worker's own words and fix for a CUDA out-of-memory error
    train.on_event({"type": "error", "step": 3, "kind": "out_of_memory", "message": message, "fix": fix})
    assert not train.problem.isHidden() and "ran out of memory" in train.problem_text.text()
    assert not train.fix_button.isHidden()
    qtbot.mouseClick(train.fix_button, Qt.MouseButton.LeftButton)
    assert window.studio.project.train.gradient_checkpointing  # the planner's first memory fix
    assert window.studio.dirty and "Applied to the project" in train.problem_text.text()
    assert train.fix_button.isHidden()
    window.studio.dirty = False
