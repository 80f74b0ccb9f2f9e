"""The real window, offscreen: pages, the live estimate, and a real training run plotted as it happens."""
import pytest

pytest.importorskip("pytestqt")

from studio.project import Project  # noqa: E402
from ui.app import MainWindow  # noqa: E402
from ui.pages.method import MethodPage  # noqa: E402
from ui.pages.train import TrainPage  # noqa: E402


@pytest.mark.slow
def test_window_trains_and_plots(qtbot, tmp_path, tiny_model_dir, sample_data):
    project = Project(name="gui")
    project.model.name = str(tiny_model_dir)
    project.data.train_file = str(sample_data)
    project.train.max_steps = 3
    project.train.max_seq_len = 128
    project.path = tmp_path / "gui.ftproj.toml"
    window = MainWindow(project)
    qtbot.addWidget(window)
    window.show()
    assert window.pages.count() == 6
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
