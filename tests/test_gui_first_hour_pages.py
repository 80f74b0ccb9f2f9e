"""A newcomer's first hour on the Train, Test and Export pages (issue 15): plain words in Simple view with the
numbers one click away, charts that say what they mean, the export check's own progress, Ollama's absence said
where it is seen, failed attempts that do not pile up, and long paths that never widen the window. The words
come from the core (studio.export, studio.chat, studio.train.state); the pages are driven in the real window."""
import json
import shutil
import time

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QCoreApplication  # noqa: E402

from studio.project import Project, save_project  # noqa: E402
from studio.train.runs import EVENTS_FILE, create_run, list_runs, record_end  # noqa: E402


# --- the core's sentences ----------------------------------------------------------------------------------
def metrics(top1, kl=0.05, ppl=1.05):
    return {"positions": 380, "top1": top1, "mean_kl": kl, "ppl_ratio": ppl, "ppl_reference": 10.0, "ppl": 10.5}


def test_the_check_leads_with_plain_words_and_keeps_the_numbers_for_details():
    from studio.export.parity import plain_verdict, verdict

    good = verdict("q4_k_m", metrics(0.86, kl=0.0991, ppl=1.1869), [])
    assert good["passed"] and good["plain"] == "Q4_K_M: answers like your trained model on 86 % of words; fine for chat."
    assert "mean KL 0.0991" in good["summary"] and "KL" not in good["plain"]  # the numbers stay for Details
    assert "full-quality" in verdict("f16", metrics(1.0, kl=0.0, ppl=1.0), [])["plain"]
    assert "nearly identical" in verdict("q8_0", metrics(0.97, kl=0.005), [])["plain"]
    broken = verdict("q4_k_m", metrics(0.30, kl=0.9), [])
    assert not broken["passed"] and "only 30 % of words" in broken["plain"] and "bigger type" in broken["plain"]
    misread = verdict("q8_0", metrics(0.99, kl=0.001), ["don't"])
    assert "reads some text differently" in misread["plain"]
    # A report written before the plain words existed is read in the same words.
    old = {k: v for k, v in good.items() if k != "plain"}
    assert plain_verdict("q4_k_m", old) == good["plain"]


def test_a_chat_pane_replaces_its_loading_status_with_the_answer(qtbot):
    from ui.widgets.chat_pane import ChatPane

    pane = ChatPane("Fine-tuned model")
    qtbot.addWidget(pane)
    pane.ask("Where is the treasure?")
    pane.note("loading the model…")
    assert pane.view.toPlainText().endswith("Model: [loading the model…]")
    for piece in ("Under the ", "old oak."):
        pane.add(piece)
    assert pane.view.toPlainText() == "You: Where is the treasure?\nModel: Under the old oak."
    pane.ask("And the map?")
    pane.note("loading the model…")
    pane.note("The model could not be loaded.")  # a failure stays where the answer would be
    assert pane.view.toPlainText().endswith("You: And the map?\nModel: [The model could not be loaded.]")


def test_an_example_reads_as_a_conversation_without_template_markers(tiny_model_dir):
    from transformers import AutoTokenizer

    from studio.chat import conversation_turns
    from studio.data import Row, highlight

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    row = Row(1, messages=[{"role": "user", "content": "Where is the treasure?"},
                        {"role": "assistant", "content": "Under the old oak, matey."}])
    pieces = highlight(row, tokenizer, "assistant", 1024, "")
    assert "<|im_start|>" in "".join(p.text for p in pieces)  # what the model reads ...
    turns = conversation_turns(pieces)
    # ... and what a person reads: SmolLM2's template adds its own system turn nobody wrote.
    assert [t.speaker for t in turns] == ["System", "You", "Model"]
    text = {t.speaker: "".join(p.text for p in t.spans) for t in turns}
    assert text["You"] == "Where is the treasure?" and text["Model"] == "Under the old oak, matey."
    assert "SmolLM" in text["System"] and not any("<|" in s for s in text.values())
    assert all(p.trained for p in turns[2].spans) and not any(p.trained for p in turns[1].spans)


def test_failed_attempts_before_the_first_step_do_not_pile_up(tmp_path):
    from studio.train.state import read_run, runs_worth_listing

    project = Project(name="attempts")
    save_project(project, tmp_path / "attempts.ftproj.toml")
    trained = create_run(project)
    (trained / EVENTS_FILE).write_text(json.dumps({"type": "metrics", "step": 3, "loss": 2.0, "time": 1}) + "\n")
    record_end(trained, {"message": "Out of memory at step 3.", "step": 3})
    attempts = []
    for _ in range(3):
        time.sleep(1.05)  # run folders are named by the second
        attempts.append(create_run(project))
        record_end(attempts[-1], {"message": "No usable training example: raise the cutoff."})
    runs = list_runs(project)
    assert len(runs) == 4 and runs[0] == attempts[-1]
    assert read_run(attempts[0]).describe() == "failed before training began"
    assert read_run(trained).describe() == "failed at step 3"
    # The newest attempt (its error is the one to read) and the run that trained stay; nothing is deleted.
    assert runs_worth_listing(runs) == [attempts[-1], trained]
    assert runs_worth_listing(runs, keep=attempts[0]) == [attempts[-1], attempts[0], trained]
    # A run that trained after the attempts does not hide the newest attempt: one failed line stays.
    time.sleep(1.05)
    later = create_run(project)
    (later / EVENTS_FILE).write_text(json.dumps({"type": "done", "step": 4, "total_steps": 4, "time": 2}) + "\n")
    assert runs_worth_listing(list_runs(project)) == [later, attempts[-1], trained]
    assert all(run.is_dir() for run in attempts)


def test_a_model_that_cannot_be_fetched_is_a_sentence_not_an_exception_name(tmp_path, monkeypatch):
    from studio.chat import load_chat
    from studio.errors import ModelError
    from studio.models import resolve_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache: nothing to find offline
    with pytest.raises(ModelError) as missing:
        resolve_model("nobody-has/this-model-anywhere")
    assert "could not be reached" in str(missing.value) and "Error" not in str(missing.value)
    with pytest.raises(ModelError) as unloadable:  # transformers' own LocalEntryNotFoundError (an OSError)
        load_chat("hf", "nobody-has/this-model-anywhere", "embedded")
    assert "could not be loaded" in str(unloadable.value) and "Error" not in str(unloadable.value)


def test_a_k_quant_that_cannot_pack_a_model_says_what_it_means(tmp_path):
    from studio.export.preflight import Preflight, check_k_quant_fallback

    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 576}))
    report = Preflight()
    check_k_quant_fallback(tmp_path, ["q4_k_m"], report)
    (warning,) = report.warnings
    assert warning.startswith("This model's layers have a size the Q4_K_M format cannot pack")
    assert "higher precision" in warning and "Nothing to do" in warning


def test_the_results_card_names_its_measures_in_words():
    from studio.evaluate import verdict

    general = {"questions": 20, "base": {"accuracy": 0.5, "correct": 10, "prose_perplexity": 10.0, "stopped": 0.9},
               "tuned": {"accuracy": 0.5, "correct": 10, "prose_perplexity": 10.5, "stopped": 0.9}}
    kept, why = verdict.judge_general(general)
    assert kept == verdict.KEPT and "surprise at everyday text (perplexity) +5%" in why


# --- the window --------------------------------------------------------------------------------------------
@pytest.fixture
def window(qtbot, tmp_path):
    from ui import tasks
    from ui.app import MainWindow

    QCoreApplication.setOrganizationName("Fine-Tune Studio tests")  # keep the user's own settings untouched
    opened = []

    def open_window(project: Project):
        project.path = tmp_path / f"{project.name}.ftproj.toml"
        save_project(project, project.path)
        win = MainWindow(project)
        win.resize(1366, 768)
        win.show()
        opened.append(win)
        return win

    yield open_window
    # Closing a window while its Tasks still run has crashed the interpreter: let them end first.
    qtbot.waitUntil(lambda: not tasks._RUNNING, timeout=120_000)
    for win in opened:
        win.studio.set_expert(False)  # the next test starts in the default view
        win.studio.dirty = False
        win.close()


def test_train_charts_explain_themselves_and_hide_what_says_nothing(window, qtbot):
    from ui.pages.train import TrainPage

    win = window(Project(name="charts"))
    win.studio.set_expert(False)
    win.go_to(TrainPage)
    plots = win.page(TrainPage).plots
    qtbot.waitUntil(lambda: plots.built, timeout=30_000)
    for step in range(1, 6):
        plots.add_event({"type": "metrics", "step": step, "loss": 3.0 - step / 3, "lr": 1e-4, "grad_norm": 1.5})
        plots.add_event({"type": "progress", "step": step, "tokens_per_s": 900.0})
    plots.add_event({"type": "eval", "step": 5, "eval_loss": 2.1})
    plots.redraw()
    qtbot.wait(50)

    loss = plots.loss_plot
    assert loss.legend is None  # no legend box over the curves: the title line above names them
    assert "lower is better" in loss.titleLabel.text and "held-back examples" in loss.titleLabel.text
    assert plots.caption.isVisible() and "lower is better" in plots.caption.text()
    assert "memorizing" in plots.caption.text()  # what eval loss tells, from the glossary
    small = [plots.lr_plot, plots.grad_plot, plots.speed_plot, plots.memory_plot]
    assert not any(plot.getViewWidget().isVisible() for plot in small)  # Simple view: the loss chart only

    win.studio.set_expert(True)
    qtbot.wait(50)
    assert all(plot.getViewWidget().isVisible() for plot in small[:3])
    assert not plots.memory_plot.getViewWidget().isVisible()  # no GPU measured: no empty chart
    plots.add_event({"type": "memory", "step": 5, "reserved_bytes": 3 * 1024**3, "estimate_bytes": 4 * 1024**3})
    plots.redraw()
    assert plots.memory_plot.getViewWidget().isVisible()


def test_train_page_lists_one_failed_attempt_and_export_is_not_ready_after_it(window, qtbot):
    from ui.pages.export import ExportPage
    from ui.pages.train import TrainPage

    project = Project(name="tries")
    win = window(project)
    attempts = []
    for _ in range(3):
        attempts.append(create_run(win.studio.project))
        record_end(attempts[-1], {"message": "No usable training example: raise the cutoff."})
        time.sleep(1.05)
    win.studio.set_run(attempts[-1])
    train, export = win.page(TrainPage), win.page(ExportPage)
    labels = [train.runs.itemText(i) for i in range(train.runs.count())]
    assert labels == [f"{attempts[-1].name} — failed before training began"]
    ready, words = export.readiness()
    assert not ready and words == "train a run first"  # never "ready to export" after a failed run

    win.studio.set_busy(True)  # training runs (or an export): its weights are not there yet
    assert export.readiness() == (False, "after training ends")
    win.studio.set_busy(False)


def test_a_training_problem_says_its_fix_in_words_and_settings_only_in_expert_view(window, qtbot):
    from studio.train.worker import explain_oom
    from ui.pages.train import TrainPage

    win = window(Project(name="oom"))
    win.studio.set_expert(False)
    train = win.page(TrainPage)
    message, fix = explain_oom(win.studio.project)  # the worker's words and fix for a CUDA out-of-memory error
    event = {"type": "error", "step": 3, "kind": "out_of_memory", "message": message, "fix": fix}
    train.on_event(event)
    assert train.problem_text.text() == message and "To make it fit" in message
    assert not train.fix_button.isHidden()
    win.studio.set_expert(True)  # the problem shown is said again, the Expert way
    assert "Apply the fix changes: train.gradient_checkpointing → True" in train.problem_text.text()


def test_results_page_keeps_the_technical_columns_and_choices_for_expert_view(window, qtbot):
    from studio.evaluate.compare import COLUMNS
    from ui.pages.results import ResultsPage

    win = window(Project(name="results"))
    win.studio.set_expert(False)
    win.go_to(ResultsPage)
    page = win.page(ResultsPage)
    hidden = {key for column, (key, _) in enumerate(COLUMNS) if page.runs.isColumnHidden(column)}
    assert hidden == {"rank", "alpha", "learning_rate", "peak_gb", "heldout_loss"} and not page.thorough.isVisible()
    win.studio.set_expert(True)
    assert not any(page.runs.isColumnHidden(c) for c in range(len(COLUMNS))) and page.thorough.isVisible()


def test_test_page_offers_the_system_prompt_and_says_what_the_template_adds(window, qtbot, tiny_model_dir):
    from ui.pages.test import TestPage

    project = Project(name="asking")
    project.model.name = str(tiny_model_dir)
    win = window(project)
    win.studio.set_expert(False)
    win.go_to(TestPage)
    page = win.page(TestPage)
    qtbot.waitUntil(lambda: bool(page.template_default), timeout=120_000)
    assert "This model's template adds a default instruction: “You are a helpful AI assistant named SmolLM" \
        in page.system_explained.text()
    assert page.held_out_label.text() == "Your examples kept out of training"
    words = page.hint.text() + page.system_explained.text() + page.base.source.text()
    assert "Data page" not in words and "greedy" not in words and "transformers" not in words

    page.system_prompt.setText("You are a pirate.")
    page.system_prompt.editingFinished.emit()
    assert win.studio.project.data.system_prompt == "You are a pirate."
    assert "after this instruction" in page.system_explained.text()
    win.studio.apply({"data.system_prompt": ""})  # changed elsewhere: the field follows
    assert page.system_prompt.text() == ""

    win.studio.set_expert(True)
    assert "greedy" in page.hint.text() and page.system_label.text() == "System prompt:"
    page.base.ask("Ahoy?")  # a conversation reads in speaker turns
    page.base.add("Arr.")
    assert page.base.view.toPlainText() == "You: Ahoy?\nModel: Arr."


def test_trained_tokens_are_a_conversation_in_simple_view_and_raw_in_expert(window, qtbot, tiny_model_dir):
    from transformers import AutoTokenizer

    from studio.data import Row, highlight
    from ui.pages.data import DataPage

    win = window(Project(name="tokens"))
    win.studio.set_expert(False)
    win.go_to(DataPage)
    page = win.page(DataPage)
    page.tabs.setCurrentIndex(page.tabs.count() - 1)  # "Trained tokens"
    qtbot.waitUntil(lambda: page.token_view.isVisible(), timeout=10_000)
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    row = Row(1, messages=[{"role": "user", "content": "Ahoy?"}, {"role": "assistant", "content": "Arr."}])
    page.token_view.set_pieces(highlight(row, tokenizer, "assistant", 1024, ""))
    shown = page.token_view.toPlainText()
    assert "<|im_start|>" not in shown and "You:" in shown and "Model:" in shown
    assert "System (added by the model's template, not by you):" in shown
    win.studio.set_expert(True)
    assert "<|im_start|>user" in page.token_view.toPlainText()


# --- a real export of the tiny model, once -----------------------------------------------------------------
@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_model_dir):
    """A real export (F16 and Q4_K_M, checked, Ollama asked for), with every progress report it made."""
    from studio.export import export_run

    if shutil.which("ollama"):
        pytest.skip("Ollama is installed here: its absence cannot be shown")
    folder = tmp_path_factory.mktemp("exported")
    project = Project(name="exported")
    project.evaluate.after_training = project.evaluate.after_export = False
    project.model.name = str(tiny_model_dir)
    save_project(project, folder / "exported.ftproj.toml")
    run = create_run(project)
    (run / "merged").mkdir()
    for path in tiny_model_dir.iterdir():
        (run / "merged" / path.name).symlink_to(path)
    reports = []
    result = export_run(run, ["f16", "q4_k_m"], lambda message, fraction: reports.append((message, fraction)),
                        ollama=True)
    return project, run, result, reports


def test_the_export_check_moves_the_bar_while_it_runs(exported):
    _, _, result, reports = exported
    checking = [(m, f) for m, f in reports if m.startswith("Checking") and "texts and prompts done" in m]
    fractions = [f for _, f in checking]
    # Each text and prompt moves the bar, for the reference model and for each file, never backwards.
    assert len(set(fractions)) >= 3 * 4 and fractions == sorted(fractions)
    assert any("Q4_K_M against your trained model" in m for m, _ in checking)
    assert min(fractions) >= 0.6 and max(fractions) <= 0.95
    assert result.parity["q4_k_m"]["plain"].startswith("Q4_K_M: answers like your trained model on ")


def test_export_page_shows_plain_results_details_ollama_and_keeps_its_width(window, qtbot, exported):
    from ui.pages.export import ExportPage

    _, run, result, _ = exported
    win = window(Project(name="shown"))
    win.studio.set_expert(False)
    win.go_to(ExportPage)
    page = win.page(ExportPage)
    qtbot.wait(50)
    width = win.width()
    # A long folder name as a user may have it, shown through the page's own result view.
    result.modelfile = result.modelfile.parent / ("a-very-long-folder-name-" * 12) / result.modelfile.name
    page.result = result
    page._show_result(result)
    qtbot.wait(100)
    column = [page.files.item(r, 3).text() for r in range(page.files.rowCount())]
    assert any("Q4_K_M: answers like your trained model on" in text for text in column)
    assert not any("KL" in text or "perplexity" in text for text in column)
    assert not page.details.isVisible() and "mean KL" in page.details.text()
    page.details_button.click()
    assert page.details.isVisible() and "a-very-long-folder-name" in page.details.text()
    assert page.ollama_box.isVisible()
    assert "Ollama is not installed" in page.ollama_text.text() and "ollama.com" in page.ollama_text.text()
    assert "LM Studio" in page.ollama_text.text()
    assert "ollama create" not in page.modelfile.text()  # the terminal line only under Details
    assert page.readiness() == (True, "2 GGUF file(s) written")
    qtbot.wait(100)
    assert win.width() == width  # nothing the export shows widens the window

    assert not page.quant_boxes["q5_k_m"].isVisible() and page.quant_boxes["q4_k_m"].isVisible()
    assert "Q4_K_M: " in page.types_explained.text() and page.types_explained.isVisible()
    win.studio.set_expert(True)
    assert page.quant_boxes["q5_k_m"].isVisible() and not page.types_explained.isVisible()

    # Before the next export, asking for Ollama without it is said beside the checks, not only afterwards.
    page.ollama.setChecked(True)
    win.studio.set_run(run)
    qtbot.waitUntil(lambda: page.checked, timeout=120_000)
    assert "Ollama is not installed on this computer: the GGUF files will be made" in page.checks_label.text()
