"""A first hour in the app (issue 15), the planning stages: a computer without an NVIDIA GPU judged by its own
RAM and CPU, the Method page readable at the default sizes, a cutoff that leaves no answer, a data file deleted
behind the app's back, and the Simple and Expert views of the Model, Data and Method pages."""
from __future__ import annotations

import json

import pytest
from PySide6.QtCore import QCoreApplication
from PySide6.QtWidgets import QAbstractButton, QLabel

from studio.plan import (
    cpu_verdict,
    estimate,
    planned_gpu,
    start_question,
    suggest_fixes,
    verdict,
)
from studio.plan.gpu import detect_gpu
from studio.project import Project

GiB = 1024**3
SMALL = "embedded:SmolLM2-135M-Instruct"


# --- the core -------------------------------------------------------------------------------------------
def test_cpu_verdict_judges_ram_and_time_and_names_sensible_models():
    from studio.catalog import find

    small = estimate(_config(SMALL), Project())
    judged = cpu_verdict(small, ram=(32 * GiB, 30 * GiB), cores=8)
    assert judged.on_cpu and judged.status == "fits" and "RAM" in judged.sentence and "rough" in judged.sentence
    big_project = Project()
    big_project.model.name = "Qwen/Qwen2.5-7B-Instruct"
    big = estimate(find("Qwen/Qwen2.5-7B-Instruct").config, big_project)
    slow = cpu_verdict(big, ram=(512 * GiB, 500 * GiB), cores=8)
    assert slow.status == "slow" and "too big to train sensibly on a CPU" in slow.sentence
    short = cpu_verdict(big, ram=(16 * GiB, 12 * GiB), cores=8)
    assert short.status == "does_not_fit" and "Does not fit this computer's RAM" in short.sentence
    # on the CPU only the changes that save RAM are offered (never QLoRA or the 8-bit optimizer)
    assert all("QLoRA" not in fix.label and "8-bit" not in fix.label for fix in short.fixes)
    # the same question against a planned card is the GPU verdict
    assert verdict(big, planned_gpu(80)).on_cpu is False


def test_ram_and_the_rough_step_time_follow_this_computer_and_the_settings():
    import os

    from studio.plan import PlanSettings, ram_bytes
    from studio.plan.cpu import seconds_per_step

    total, available = ram_bytes()
    assert 0 < available <= total
    if hasattr(os, "sysconf"):
        assert total == os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    lora = PlanSettings(method="lora", batch_size=4, max_seq_len=512)
    base = seconds_per_step(1e8, lora, cores=4)
    assert seconds_per_step(1e8, lora, cores=8) == pytest.approx(base / 2)  # more cores, faster
    assert seconds_per_step(1e8, lora.with_changes({"max_seq_len": 1024}), cores=4) == pytest.approx(2 * base)
    assert seconds_per_step(1e8, lora.with_changes({"method": "qlora"}), cores=4) > 3 * base  # unpacked each step
    assert seconds_per_step(1e8, lora.with_changes({"method": "full"}), cores=4) > base  # weight gradients too


def test_a_fix_built_on_changes_that_do_not_fit_alone_names_them():
    from studio.catalog import find

    project = Project()
    project.model.name = "Qwen/Qwen2.5-7B-Instruct"
    project.train.batch_size, project.train.max_seq_len = 16, 4096
    est = estimate(find(project.model.name).config, project)
    fixes = suggest_fixes(est, 12 * GiB)
    assert fixes, "a 12 GB card fits a 7B model with QLoRA and the changes before it"
    assert not any("changes above" in fix.label for fix in fixes)
    combined = [fix for fix in fixes if "together with:" in fix.label]
    assert combined and all(len(fix.change) > 1 for fix in combined)


def test_start_question_only_for_a_run_that_does_not_fit():
    from studio.catalog import find

    project = Project()
    project.model.name = "Qwen/Qwen2.5-7B-Instruct"
    est = estimate(find(project.model.name).config, project)
    assert start_question(verdict(est, planned_gpu(80))) == ""
    question = start_question(verdict(est, planned_gpu(8)))
    assert "does not fit the GPU's memory" in question and "Start anyway?" in question
    on_cpu = start_question(cpu_verdict(est, ram=(8 * GiB, 6 * GiB)))
    assert "does not fit this computer's RAM" in on_cpu


def _config(name):
    from studio.catalog import config_for

    return config_for(name, Project())


def test_ftstudio_plan_says_what_the_page_says(capsys):
    """`ftstudio plan` on this computer: the same core verdict as the Method page (CPU here, the GPU elsewhere)."""
    from studio.cli import main

    assert main(["plan", "--model", SMALL]) == 0
    out = capsys.readouterr().out
    if not detect_gpu().available:
        assert "trains on the CPU" in out and "RAM" in out and "a 24 GB GPU" not in out
        # the parts listed are those held in RAM (no CUDA context; the program itself), adding up to the verdict's
        listed = [line.strip() for line in out.splitlines() if line.startswith("  ") and not line.startswith("  -")]
        assert "Estimated peak RAM" in out and any(line.startswith("The program itself") for line in listed)
        assert not any(line.startswith("CUDA context") for line in listed)
    assert main(["plan", "--model", SMALL, "--gpu-gb", "24"]) == 0
    assert "on a 24 GB GPU" in capsys.readouterr().out


# --- the window -----------------------------------------------------------------------------------------
@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    """Real windows on this computer's real GPU (none here); each waits for its background tasks before it
    closes (a window closed under a running Task has crashed the test process)."""
    from ui.app import MainWindow
    from ui.tasks import stop_all
    from ui.widgets import plan_gpu

    monkeypatch.setenv("FTSTUDIO_HOME", str(tmp_path / "home"))
    QCoreApplication.setOrganizationName("Fine-Tune Studio tests")
    plan_gpu.set_planned_size(plan_gpu.DETECTED)
    opened = []

    def open_window(project: Project, size=(1366, 768), expert=False):
        project.path = tmp_path / f"{project.name}.ftproj.toml"
        win = MainWindow(project)
        win.studio.set_expert(expert)
        win.resize(*size)
        win.show()
        opened.append(win)
        qtbot.waitUntil(lambda: win.studio.gpu is not None, timeout=60_000)  # the real detection
        return win

    yield open_window
    stop_all()
    for win in opened:
        win.studio.dirty = False
        win.close()
    plan_gpu.set_planned_size(plan_gpu.DETECTED)


def test_without_a_gpu_the_method_and_model_pages_judge_this_computer(window, qtbot):
    from ui.pages.method import MethodPage
    from ui.pages.model import ModelPage

    win = window(Project(name="cpu"))
    if win.studio.gpu.available:
        pytest.skip("this computer has an NVIDIA GPU: the CPU judgement does not apply")
    win.go_to(MethodPage)
    page = win.page(MethodPage)
    assert page.panel.plan_for.currentText().startswith("This computer (CPU")
    assert page.verdict.on_cpu and "trains on the CPU" in page.panel.verdict_label.text()
    assert "RAM" in page.panel.heading.text() and "24 GB" not in page.panel.verdict_label.text()
    assert "per 1,000 tokens trained" in page.panel.verdict_label.text()
    win.go_to(ModelPage)
    model = win.page(ModelPage)
    marks = {m.name: model.table.item(row, 6).text() for row, m in enumerate(model.models)}
    assert marks["SmolLM2-135M-Instruct"] in ("fine on this CPU", "tight in RAM")
    assert marks["Qwen2.5-7B-Instruct"] in ("too big for RAM", "too slow on a CPU")  # never a green "fits"
    assert model.cpu_note.isVisible() and "small models" in model.cpu_note.text()
    # planning for a card is an explicit choice, and then the GPU verdict shows
    win.go_to(MethodPage)
    page.panel.plan_for.setCurrentIndex(page.panel.plan_for.findData("24"))
    assert not page.verdict.on_cpu and page.verdict.status == "fits"
    assert "a 24 GB GPU" in page.panel.verdict_label.text() and page.panel.heading.text() == "GPU memory"
    win.go_to(ModelPage)
    assert model.table.item(0, 6).text() == "fits"


def test_start_asks_before_a_run_that_does_not_fit(window, qtbot, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    from ui.pages.train import TrainPage

    project = Project(name="toobig")
    project.model.name = "Qwen/Qwen2.5-7B-Instruct"
    win = window(project)
    win.studio.set_planned_size("8")
    assert win.studio.plan.verdict.status == "does_not_fit"
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *args: asked.append(args[2]) or QMessageBox.StandardButton.No)
    win.page(TrainPage).start_training()
    assert asked and "does not fit" in asked[0] and win.page(TrainPage).process is None


@pytest.mark.parametrize("size", [(1366, 768), (1280, 800)])
@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("expert", [False, True])
def test_method_page_reads_fully_at_the_default_sizes(window, qtbot, size, theme, expert):
    from PySide6.QtWidgets import QApplication

    import ui.theme
    from ui.pages.method import MethodPage

    ui.theme.apply(theme)
    try:
        win = window(Project(name="sizes"), size=size, expert=expert)
        win.go_to(MethodPage)
        page = win.page(MethodPage)
        QApplication.processEvents()
        assert not page.scroll.horizontalScrollBar().isVisible()
        assert page.settings_panel.width() <= page.scroll.viewport().width()
        for label in page.settings_panel.findChildren(QLabel) + page.panel.findChildren(QLabel):
            if label.isVisible() and label.text() and not label.wordWrap():
                assert label.sizeHint().width() <= label.width() + 1, f"{label.text()!r} is cut"
        for button in page.settings_panel.findChildren(QAbstractButton):
            if button.isVisible() and button.text():
                assert button.sizeHint().width() <= button.width() + 1, f"{button.text()!r} is cut"
        field = page.optimizer if expert else page.cutoff  # the field furthest right and down of each view
        field.setFocus()
        page.scroll.ensureWidgetVisible(field)
        QApplication.processEvents()
        assert page.scroll.horizontalScrollBar().value() == 0  # focusing a field never shifts the page sideways
    finally:
        ui.theme.apply("light")


def test_cutoff_spin_box_takes_the_project_range(window, qtbot):
    from studio.project import MAX_SEQ_LEN
    from ui.pages.method import MethodPage

    win = window(Project(name="cutoff"), expert=True)
    page = win.page(MethodPage)
    assert (page.cutoff.minimum(), page.cutoff.maximum()) == MAX_SEQ_LEN
    page.cutoff.setValue(999_999)
    assert win.studio.project.train.max_seq_len == 999_999  # never clipped to another number silently
    assert f"{MAX_SEQ_LEN[1]:,}" in page.cutoff.toolTip()


# --- the data page ----------------------------------------------------------------------------------------
def _wait_for_data(qtbot, page):
    qtbot.waitUntil(lambda: page.task is None and (page.findings is not None or bool(page.error)), timeout=120_000)


def _qa_file(folder, rows=12):
    path = folder / "qa.jsonl"
    path.write_text("".join(json.dumps({"messages": [
        {"role": "user", "content": f"Question number {i}: what is the capital of country {i} in this long list?"},
        {"role": "assistant", "content": f"The capital of country {i} is city {i}."}]}) + "\n"
        for i in range(rows)))
    return path


def test_a_cutoff_too_short_is_named_with_its_fix(window, qtbot, tmp_path, tiny_model_dir):
    from studio.data import prepare_dataset
    from studio.data.findings import load_tokenizer
    from studio.errors import DataError
    from ui.pages.data import DataPage

    project = Project(name="short")
    project.model.name = str(tiny_model_dir)
    project.data.train_file = str(_qa_file(tmp_path))
    project.train.max_seq_len = 16
    win = window(project)
    win.go_to(DataPage)
    page = win.page(DataPage)
    _wait_for_data(qtbot, page)
    assert page.findings.report.usable_rows == 12 and page.findings.usable_rows(win.studio.project) == 0
    assert "cutoff of 16 tokens" in page.cutoff_problem.text() and page.cutoff_problem.isVisible()
    assert page.readiness() == (False, "cutoff too short")
    assert "cutoff too short" in win.stages.item(1).text()
    # Start would fail the same way, and its sentence names the cutoff and the fix
    with pytest.raises(DataError, match=r"cutoff of 16 tokens .* Raise the cutoff to \d+"):
        prepare_dataset(win.studio.project, load_tokenizer(tiny_model_dir), use_cache=False)
    page.cutoff_fix.click()
    fixed = win.studio.project.train.max_seq_len
    assert fixed > 16 and page.findings.usable_rows(win.studio.project) == 12
    assert not page.cutoff_problem.isVisible() and page.readiness()[0]
    assert "12 rows" in win.stages.item(1).text()


def test_a_deleted_data_file_is_noticed_when_the_page_is_shown_again(window, qtbot, tmp_path, tiny_model_dir):
    from ui.pages.data import DataPage
    from ui.pages.method import MethodPage

    data = _qa_file(tmp_path)
    project = Project(name="deleted")
    project.model.name = str(tiny_model_dir)
    project.data.train_file = str(data)
    win = window(project)
    win.go_to(DataPage)
    page = win.page(DataPage)
    _wait_for_data(qtbot, page)
    assert page.readiness()[0] and "12 rows" in win.stages.item(1).text()
    win.go_to(MethodPage)
    data.unlink()
    win.go_to(DataPage)
    _wait_for_data(qtbot, page)
    assert "qa.jsonl" in page.summary.text() and "does not exist" in page.summary.text()
    assert "Choose the file again" in page.summary.text() and page.preview.rowCount() == 0
    assert page.readiness() == (False, "cannot be read") and "cannot be read" in win.stages.item(1).text()
    # the file is put back while the user is in another program: coming back to the app reads it again
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    _qa_file(tmp_path, rows=7)
    QApplication.instance().applicationStateChanged.emit(Qt.ApplicationState.ApplicationActive)
    qtbot.waitUntil(lambda: page.findings is not None and page.task is None, timeout=60_000)
    assert page.readiness() == (True, "7 rows, conversations") and "7 rows" in win.stages.item(1).text()
    assert "qa.jsonl: conversations, 7 rows" in page.summary.text()  # Simple view: the layout in words
    win.studio.set_expert(True)
    assert "qa.jsonl: messages format, 7 rows" in page.summary.text() and page.readiness()[1] == "7 rows, messages"
    win.studio.set_expert(False)


def test_preview_numbers_rows_as_the_problem_list_and_shows_an_alpaca_input(window, qtbot, tmp_path, tiny_model_dir):
    from ui.pages.data import DataPage

    csv = tmp_path / "qa.csv"
    csv.write_text("question,answer\nWhat is one?,One.\n,missing question\nWhat is three?,Three.\n")
    project = Project(name="csv")
    project.model.name = str(tiny_model_dir)
    project.data.train_file = str(csv)
    win = window(project)
    page = win.page(DataPage)
    win.go_to(DataPage)
    _wait_for_data(qtbot, page)
    header = page.preview.horizontalHeaderItem(0).text()
    problems = [page.problems.item(i).text() for i in range(page.problems.count())]
    assert header == "Line" and page.preview.item(0, 0).text() == "2"  # the file's line, as Problems says
    assert any("line 3" in problem for problem in problems)
    shared = "Answer the following question about geography as precisely and briefly as you possibly can, please."
    alpaca = tmp_path / "alpaca.json"
    alpaca.write_text(json.dumps([{"instruction": shared, "input": f"Capital of country {i}?",
                                   "output": f"City {i}."} for i in range(3)]))
    page.use_file(alpaca)
    qtbot.waitUntil(lambda: page.findings is not None and page.findings.report.path.endswith("alpaca.json"),
                    timeout=60_000)
    first = page.preview.item(0, 1).text()
    assert first.index("Capital of country 0?") < 90  # the row's own question within sight, not after the instruction


# --- Simple and Expert views ------------------------------------------------------------------------------
JARGON = ("chatml", "hidden size", "rank-r", "NF4", "all-linear", "gradient accumulation", "adamw_torch",
          "allocator", "CUDA context", "chunked loss", "packing")


def _visible_words(page) -> str:
    texts = [w.text() for w in page.findChildren(QLabel) + page.findChildren(QAbstractButton)
             if w.isVisibleTo(page) and w.text()]
    table = getattr(page, "table", None)
    if table is not None:
        for column in range(table.columnCount()):
            if not table.isColumnHidden(column):
                texts += [table.horizontalHeaderItem(column).text()] + [
                    table.item(row, column).text() for row in range(table.rowCount()) if table.item(row, column)]
    return "\n".join(texts).lower()


def test_simple_view_hides_the_expert_settings_and_their_jargon(window, qtbot):
    from ui.pages.data import DataPage
    from ui.pages.method import MethodPage
    from ui.pages.model import ModelPage

    win = window(Project(name="views"))
    method = win.page(MethodPage)
    for cls in (ModelPage, DataPage, MethodPage):
        win.go_to(cls)
        words = _visible_words(win.page(cls))
        assert not [term for term in JARGON if term.lower() in words], cls.__name__
    assert not method.optimizer.isVisibleTo(method) and not method.accumulation.isVisibleTo(method)
    assert method.rank.isVisibleTo(method) and method.epochs.isVisibleTo(method)
    assert method.method_buttons["lora"].text() == "Light (LoRA)"
    win.studio.set_expert(True)
    assert method.optimizer.isVisibleTo(method) and method.accumulation.isVisibleTo(method)
    assert "gradient accumulation" in _visible_words(method) and "chat template" in _visible_words(win.page(ModelPage))
    # switching views keeps the project's values
    method.batch.setValue(3)
    win.studio.set_expert(False)
    win.studio.set_expert(True)
    assert win.studio.project.train.batch_size == 3 and method.batch.value() == 3


def test_simple_view_still_shows_a_method_it_does_not_offer(window, qtbot):
    from ui.pages.method import MethodPage

    project = Project(name="dora")
    project.method.method = "dora"
    win = window(project)
    page = win.page(MethodPage)
    win.go_to(MethodPage)
    assert page.method_buttons["dora"].isVisibleTo(page) and page.method_buttons["dora"].isChecked()
    assert not page.method_buttons["lora8bit"].isVisibleTo(page)
    page.method_buttons["lora"].setChecked(True)
    assert win.studio.project.method.method == "lora" and not page.method_buttons["dora"].isVisibleTo(page)


def test_simple_view_offers_the_memory_fixes_in_plain_words(window, qtbot):
    from ui.pages.method import MethodPage

    project = Project(name="plainfix")
    project.model.name = "Qwen/Qwen2.5-1.5B-Instruct"
    project.train.batch_size, project.train.max_seq_len = 16, 2048
    win = window(project)
    win.studio.set_planned_size("8")
    win.go_to(MethodPage)
    page = win.page(MethodPage)
    assert page.verdict.status == "does_not_fit" and page.panel.fix_buttons
    words = _visible_words(page)
    assert not [term for term in JARGON if term.lower() in words]
    assert "recompute instead of remembering" in words
    win.studio.set_expert(True)
    assert "gradient checkpointing" in _visible_words(page)
