"""The real window, offscreen: pages, the live estimate, and a real training run plotted as it happens."""
import pytest

pytest.importorskip("pytestqt")

from studio.project import Project  # noqa: E402
from ui.app import MainWindow  # noqa: E402
from ui.pages.method import MethodPage  # noqa: E402
from ui.pages.train import TrainPage  # noqa: E402


def open_window(qtbot, tmp_path, model, data, name, steps):
    """The real window on a tiny project that trains `steps` steps."""
    project = Project(name=name)
    project.evaluate.after_training = project.evaluate.after_export = False  # checked in test_evaluate.py
    project.model.name = str(model)
    project.data.train_file = str(data)
    project.train.max_steps = steps
    project.train.max_seq_len = 128
    project.path = tmp_path / f"{name}.ftproj.toml"
    window = MainWindow(project)
    qtbot.addWidget(window)
    window.show()
    return project, window


@pytest.mark.slow
def test_window_trains_and_plots(qtbot, tmp_path, tiny_model_dir, sample_data):
    project, window = open_window(qtbot, tmp_path, tiny_model_dir, sample_data, "gui", steps=3)
    assert window.pages.count() == 7
    method, train = window.page(MethodPage), window.page(TrainPage)
    before = method.estimate_label.text()
    method.batch.setValue(64)
    assert "GB estimated" in method.estimate_label.text() and method.estimate_label.text() != before
    window.go_to(TrainPage)
    train.start_training()
    qtbot.waitUntil(lambda: train.start_button.isEnabled(), timeout=120_000)
    assert train.plots.points == 3
    assert train.status.text().startswith("Finished")
    assert train.progress.value() == 100


@pytest.mark.slow
def test_worker_killed_for_memory_is_explained_in_the_window(qtbot, tmp_path, tiny_model_dir, sample_data,
                                                             memory_cgroup):
    """A real out-of-memory kill (the worker runs in a 400 MB memory group): the window says so in plain words
    and offers the fix it can apply."""
    project, window = open_window(qtbot, tmp_path, tiny_model_dir, sample_data, "killed", steps=500)
    train = window.page(TrainPage)
    window.go_to(TrainPage)
    train.start_training()
    (memory_cgroup / "cgroup.procs").write_text(str(train.process.process.pid))
    qtbot.waitUntil(lambda: train.start_button.isEnabled(), timeout=180_000)
    assert "ran out of memory (RAM)" in train.problem_text.text()
    assert not train.fix_button.isHidden()
    train.apply_fix()
    assert project.train.batch_size == 2 and project.train.grad_accumulation == 2
    window.studio.dirty = False
