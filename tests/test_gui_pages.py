"""The Model, Data and Method pages in the real window, offscreen, on the real planner, data reader and tokenizer."""
import json
import time
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QCoreApplication, QMimeData, QPointF, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDropEvent  # noqa: E402

from studio.catalog import config_for, find, list_models  # noqa: E402
from studio.errors import ProjectError  # noqa: E402
from studio.plan import estimate, shape_from_config  # noqa: E402
from studio.presets import apply_changes, apply_preset, list_presets  # noqa: E402
from studio.project import EMBEDDED_MODEL, Project  # noqa: E402

GiB = 1024 ** 3


# --- the core modules the pages stand on ------------------------------------------------------------------
def test_catalog_shapes_give_the_published_parameter_counts():
    models = list_models()
    assert len(models) >= 12 and models[0].embedded and models[0].id == EMBEDDED_MODEL
    for model in models:
        assert shape_from_config(model.config).total_params == model.parameters, model.name
        assert find(model.hub_id) is model and find(model.name.upper()) is model
        assert estimate(config_for(model.id), Project()).total_bytes > 0
    assert find("embedded").embedded
    assert {m.config["model_type"] for m in models} >= {"llama", "qwen2", "qwen3", "mistral", "gemma3_text", "phi3"}


def test_config_for_reads_folders_and_admits_what_it_does_not_know(tiny_model_dir):
    assert config_for(str(tiny_model_dir))["hidden_size"] == 256
    assert config_for("nobody-has/this-model-anywhere") is None
    assert config_for("") is None


def test_presets_change_only_what_they_list_and_respect_full_fine_tuning():
    names = [p.name for p in list_presets()]
    assert names == ["Quick test", "Balanced", "Max quality"]
    lora, full = Project(), Project()
    full.method.method = "full"
    full.data.system_prompt = "kept"
    apply_preset(lora, "max quality")
    apply_preset(full, "Max quality")
    assert lora.method.rank == 64 and lora.train.gradient_checkpointing and lora.train.max_seq_len == 2048
    assert full.train.learning_rate == lora.train.learning_rate / 10  # full fine-tuning wants a lower rate
    assert full.data.system_prompt == "kept" and full.method.method == "full"
    with pytest.raises(ProjectError, match="no preset called 'Fast'"):
        apply_preset(lora, "Fast")


def test_changes_are_all_or_nothing():
    project = Project()
    with pytest.raises(ProjectError, match="train.batch_size = 0"):
        apply_changes(project, {"train.max_seq_len": 256, "train.batch_size": 0})
    assert project.train.max_seq_len == 1024  # the good half was not applied either
    with pytest.raises(ProjectError, match="'train.bach_size' is not a project setting"):
        apply_changes(project, {"train.bach_size": 2})


# --- the window ------------------------------------------------------------------------------------------
@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    from ui.app import MainWindow
    from ui.widgets import plan_gpu

    QCoreApplication.setOrganizationName("Fine-Tune Studio tests")  # keep the user's own settings untouched
    plan_gpu.set_planned_size("24")
    opened = []

    def open_window(project: Project):
        project.path = tmp_path / f"{project.name}.ftproj.toml"
        win = MainWindow(project)  # closed below, not by qtbot: it would close before `dirty` is cleared
        win.resize(1280, 860)
        win.show()
        opened.append(win)
        return win

    yield open_window
    for win in opened:
        win.studio.dirty = False  # no "save changes?" question at teardown
        win.close()


def wait_for_data(qtbot, page, timeout=120_000):
    qtbot.waitUntil(lambda: page.task is None and (page.findings is not None or bool(page.error)),
                    timeout=timeout)


def test_model_page_picks_a_catalog_model_and_judges_it(window, qtbot):
    from ui.pages.model import ModelPage
    from ui.widgets import plan_gpu

    plan_gpu.set_planned_size("8")
    win = window(Project(name="models"))
    win.go_to(ModelPage)
    page = win.page(ModelPage)
    assert page.chosen_label.text().endswith("SmolLM2-135M-Instruct")
    assert "Fits" in page.verdict_label.text()
    big = next(i for i, m in enumerate(page.models) if m.name == "Qwen2.5-7B-Instruct")
    page.table.selectRow(big)
    assert win.studio.project.model.name == "Qwen/Qwen2.5-7B-Instruct"
    assert "7.6B parameters" in page.shape_label.text()
    assert "Does not fit" in page.verdict_label.text()  # 16-bit 7B weights alone are 14 GB
    assert page.table.item(big, 6).text() == "too big" and page.table.item(0, 6).text() == "fits"
    assert "Qwen2.5-7B-Instruct" in win.stages.item(0).text()


def test_model_page_refuses_a_folder_that_is_not_a_model(window, tmp_path, tiny_model_dir):
    from ui.pages.model import ModelPage

    win = window(Project(name="folders"))
    page = win.page(ModelPage)
    assert not page.use_folder(tmp_path)
    assert "has no config.json" in page.message.text()
    assert win.studio.project.model.name == EMBEDDED_MODEL
    assert page.use_folder(tiny_model_dir)
    assert win.studio.project.model.name == str(tiny_model_dir)
    assert "2 layers" in page.shape_label.text()


def test_method_page_estimate_follows_every_control(window, qtbot):
    from ui.pages.method import MethodPage

    win = window(Project(name="method"))
    win.go_to(MethodPage)
    page = win.page(MethodPage)
    first = page.estimate.total_bytes
    page.rank.setValue(128)
    assert win.studio.project.method.rank == 128 and win.studio.project.method.alpha == 256  # alpha follows
    assert page.estimate.total_bytes > first
    assert page.estimate_label.text() == f"{page.estimate.total_bytes / GiB:.2f} GB estimated"
    page.method_buttons["full"].setChecked(True)
    assert win.studio.project.method.method == "full" and not page.adapter_box.isEnabled()
    page.checkpointing.setChecked(True)
    assert win.studio.project.train.gradient_checkpointing
    page.apply_preset("Quick test")
    assert win.studio.project.train.max_steps == 30 and page.max_steps.value() == 30
    assert page.cutoff.value() == 512 and page.learning_rate.value() == pytest.approx(2e-5)
    # every change is redrawn on the spot: time a burst of them
    started = time.perf_counter()
    for batch in range(1, 33):
        page.batch.setValue(batch)
    per_change_ms = (time.perf_counter() - started) * 1000 / 32
    assert win.studio.project.train.batch_size == 32
    assert per_change_ms < 100, f"{per_change_ms:.1f} ms per change"


def test_method_page_fix_makes_a_run_fit(window, qtbot):
    from ui.pages.method import MethodPage
    from ui.widgets import plan_gpu

    plan_gpu.set_planned_size("8")
    project = Project(name="fixes")
    project.model.name = "Qwen/Qwen2.5-1.5B-Instruct"
    project.train.batch_size, project.train.max_seq_len = 16, 2048
    win = window(project)
    win.go_to(MethodPage)
    page = win.page(MethodPage)
    assert page.verdict.status == "does_not_fit" and page.panel.fix_buttons
    before = page.estimate.total_bytes
    fix = page.verdict.fixes[0]
    page.panel.fix_buttons[0].click()
    for key, value in fix.change.items():
        section, _, name = key.partition(".")
        assert getattr(getattr(win.studio.project, section), name) == value
    assert page.estimate.total_bytes == fix.new_total_bytes < before
    assert page.verdict.status == "fits"
    assert win.stages.item(2).text().endswith("LoRA: fits")


def test_method_page_auto_fit_keeps_the_effective_batch(window, qtbot):
    from ui.pages.method import MethodPage

    project = Project(name="autofit")
    project.model.name = "Qwen/Qwen2.5-0.5B-Instruct"
    project.train.batch_size, project.train.grad_accumulation = 1, 32
    win = window(project)
    page = win.page(MethodPage)
    page.panel.auto_fit_button.click()
    train = win.studio.project.train
    assert train.batch_size > 1 and train.batch_size * train.grad_accumulation >= 32
    assert page.batch.value() == train.batch_size and page.verdict.status == "fits"


def test_data_page_reads_counts_and_highlights(window, qtbot, tiny_model_dir, sample_data):
    from ui.pages.data import DataPage
    from ui.pages.method import MethodPage

    project = Project(name="data")
    project.model.name = str(tiny_model_dir)
    project.data.train_file = str(sample_data)
    win = window(project)
    win.go_to(DataPage)
    page = win.page(DataPage)
    wait_for_data(qtbot, page)
    report, stats = page.findings.report, page.findings.stats
    assert report.format == "messages" and report.usable_rows == 120
    assert sum(count for _, _, count in page.histogram.bins) == stats.examples == 120
    assert page.preview.rowCount() == 20 and page.preview.item(0, 0).text() == "1"
    assert page.token_view.trained_text().startswith("Arr") and "<|im_start|>user" not in page.token_view.trained_text()
    assert page.split_label.text().startswith("108 examples for training, 12 held out")
    assert win.stages.item(1).text().endswith("120 rows, conversations")
    # the cutoff lives on the Method page; the data page redraws what it cuts without reading the file again
    cutoff = sorted(stats.lengths)[60]  # about half the examples are longer
    win.page(MethodPage).cutoff.setValue(cutoff)
    longer = sum(1 for n in stats.lengths if n > cutoff)
    assert 0 < longer < 120 and f"{longer} are longer than the {cutoff}-token cutoff" in page.token_summary.text()
    assert [b[2] for b in page.histogram.bins if b[0] >= cutoff] == [] or page.histogram.cutoff_line.isVisible()
    assert any(piece.truncated for piece in page.token_view.pieces)
    page.eval_percent.setValue(20)
    assert win.studio.project.data.eval_fraction == 0.2 and page.split_label.text().startswith("96 examples")


def test_data_page_lists_bad_rows_and_takes_a_dropped_file(window, qtbot, tmp_path, tiny_model_dir):
    from ui.pages.data import DataPage

    good = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Ahoy!"}]}
    bad = tmp_path / "mixed.jsonl"
    bad.write_text("\n".join([json.dumps(good), '{"messages": "not a list"}', json.dumps(good), "{broken"]) + "\n")
    project = Project(name="bad")
    project.model.name = str(tiny_model_dir)
    win = window(project)
    page = win.page(DataPage)
    assert win.stages.item(1).text().endswith("choose a data file")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(bad))])
    drop = QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                      Qt.KeyboardModifier.NoModifier)
    page.dropEvent(drop)
    assert Path(win.studio.project.data.train_file).name == "mixed.jsonl"
    wait_for_data(qtbot, page)
    report = page.findings.report
    assert report.problem_count == 2 and report.usable_rows == 2 and report.duplicates == 1
    problems = [page.problems.item(i).text() for i in range(page.problems.count())]
    assert any("line 2" in p for p in problems) and any("line 4" in p for p in problems)
    assert page.tabs.tabText(1) == "Problems (2)"
    assert page.readiness() == (True, "2 rows, conversations")
    page.bad_rows.setCurrentIndex(page.bad_rows.findData(False))
    assert win.studio.project.data.skip_bad_rows is False
    assert page.readiness() == (False, "2 bad rows: training would stop")
    page.duplicates.setChecked(True)
    assert win.studio.project.data.drop_duplicates is True


def test_data_page_explains_an_unreadable_file(window, qtbot, tmp_path):
    from ui.pages.data import DataPage

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    project = Project(name="empty")
    project.data.train_file = str(empty)
    win = window(project)
    page = win.page(DataPage)
    wait_for_data(qtbot, page)
    assert "is empty: there is nothing to train on" in page.summary.text() and page.readiness() == (False, "cannot be read")
