"""The run check (studio.evaluate): the check set, every verdict rule, the report on real runs of the tiny
model (an adapter that learned nothing, the worker's check after training, the exported GGUF in llama.cpp),
bad input, and the CLI."""
import json

import pytest

from studio.evaluate import EvaluationError, evaluate_run, general, verdict
from studio.evaluate.report import format_report, read_report, report_path, summary_line
from studio.project import Project, save_project
from studio.train.runs import create_run


def make_project(folder, model, data, **data_settings):
    project = Project(name="check")
    project.model.name = str(model)
    project.data.train_file = str(data)
    project.train.max_steps = 2
    project.train.batch_size = 2
    project.train.max_seq_len = 128
    for key, value in data_settings.items():
        setattr(project.data, key, value)
    save_project(project, folder / "check.ftproj.toml")
    return project


def untrained_adapter_run(folder, model, data, **data_settings):
    """A run whose adapter is exactly as LoRA starts (B = 0): it changes nothing, like a run of zero steps."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    project = make_project(folder, model, data, **data_settings)
    run_dir = create_run(project)
    base = AutoModelForCausalLM.from_pretrained(str(model))
    lora = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM"))
    lora.save_pretrained(str(run_dir / "adapter"))
    AutoTokenizer.from_pretrained(str(model)).save_pretrained(str(run_dir / "adapter"))
    return run_dir


@pytest.fixture(scope="module")
def checked_run(tmp_path_factory, tiny_model_dir):
    from pathlib import Path

    data = Path(__file__).resolve().parent.parent / "resources" / "samples" / "pirate_chat.jsonl"
    folder = tmp_path_factory.mktemp("checked")
    run_dir = untrained_adapter_run(folder, tiny_model_dir, data)
    seen = []
    with pytest.MonkeyPatch.context() as patch:  # an empty base cache: this first check measures the base
        patch.setenv("FTSTUDIO_HOME", str(tmp_path_factory.mktemp("home")))
        report = evaluate_run(run_dir, progress=lambda message, fraction: seen.append(fraction))
    return run_dir, report, seen


# --- the check set ------------------------------------------------------------------------------------------

def test_check_set_is_big_enough_and_covers_four_kinds():
    from transformers import AutoTokenizer

    from studio.models import embedded_model_dir

    questions = general.questions()
    assert len(questions) >= 150
    assert {q.category for q in questions} == {"facts", "arithmetic", "common sense", "instructions"}
    assert len({q.id for q in questions}) == len(questions) and all(q.accept for q in questions)
    tokens = len(AutoTokenizer.from_pretrained(str(embedded_model_dir()))(general.prose())["input_ids"])
    assert tokens >= 1800  # "a few thousand tokens of general prose"


def test_check_set_avoids_the_pirate_samples_questions(sample_data):
    asked = {json.loads(line)["messages"][0]["content"].lower() for line in sample_data.read_text().splitlines()}
    assert not asked & {q.question.lower() for q in general.questions()}


def test_the_quick_check_is_a_fixed_share_of_every_category():
    from collections import Counter

    from transformers import AutoTokenizer

    from studio.models import embedded_model_dir

    quick, everything = general.check_questions("quick"), general.check_questions("thorough")
    assert everything == general.questions() and set(quick) < set(everything)
    assert general.check_questions("quick") == quick  # the same questions every time
    # 3 in 5 of each category, spread over the file: the 2nd, 4th and 5th of every five.
    assert [q.id for q in quick if q.category == "facts"][:6] == ["facts-02", "facts-04", "facts-05", "facts-07",
                                                                  "facts-09", "facts-10"]
    asked, held = Counter(q.category for q in quick), Counter(q.category for q in everything)
    assert set(asked) == set(held)
    assert all(abs(asked[c] - held[c] * 3 / 5) < 1 for c in held)
    # Each check has its own fingerprint; the thorough one is the one reports had before there were two.
    assert general.version("quick") != general.version("thorough") == general.version()
    tokenizer = AutoTokenizer.from_pretrained(str(embedded_model_dir()))
    short, full = general.prose_rows(tokenizer, "quick"), general.prose_rows(tokenizer, "thorough")
    assert sum(len(ids) for ids, _ in short) == general.QUICK_PROSE_TOKENS < sum(len(ids) for ids, _ in full)
    assert short == full[:len(short)]
    assert len(general.prompts(tokenizer, "", "quick")) == len(quick)
    with pytest.raises(ValueError):
        general.check_questions("slow")


def test_an_answer_counts_whatever_its_style():
    question = next(q for q in general.questions() if q.question == "What is the capital of China?")
    assert general.is_right(question, "Arr, me hearty! The capital o' China be BEIJING. Yo ho ho!")
    assert not general.is_right(question, "The capital of China is Shanghai.")
    seven = next(q for q in general.questions() if q.question == "What is 7 + 8?")
    assert general.is_right(seven, "7 + 8 = 15.") and not general.is_right(seven, "It is 150.")


# --- every verdict rule, on constructed numbers ---------------------------------------------------------------

def task_numbers(closer, n, base_score, tuned_score, base_loss=2.0, tuned_loss=2.0):
    return {"examples": n, "loss_examples": n, "closer": closer,
            "base": {"score": base_score, "answer_loss": base_loss}, "tuned": {"score": tuned_score, "answer_loss": tuned_loss}}


def general_numbers(base_correct=100, tuned_correct=100, base_ppl=10.0, tuned_ppl=10.0, base_stop=0.9, tuned_stop=0.9):
    n = 160
    return {"questions": n, "base": {"accuracy": base_correct / n, "correct": base_correct, "stopped": base_stop,
                                     "prose_perplexity": base_ppl},
            "tuned": {"accuracy": tuned_correct / n, "correct": tuned_correct, "stopped": tuned_stop,
                      "prose_perplexity": tuned_ppl}}


@pytest.mark.parametrize("numbers, expected", [
    (task_numbers(11, 12, 20, 60), verdict.LEARNED),
    (task_numbers(8, 12, 20, 60), verdict.LITTLE),                  # closer on 2/3: not the 3/4 "learned" needs
    (task_numbers(12, 12, 20, 25), verdict.LITTLE),                 # closer everywhere, but only 5 points better
    (task_numbers(0, 12, 20, 20, 2.0, 1.7), verdict.LITTLE),         # answers no closer, answer loss -15 %
    (task_numbers(1, 12, 20, 20), verdict.NOT_LEARNED),
    ({"examples": 0, "loss_examples": 30, "closer": 0, "base": {"score": None, "answer_loss": 3.0},
      "tuned": {"score": None, "answer_loss": 1.5}}, verdict.LEARNED),  # plain text: loss -50 %
    (None, verdict.NOT_MEASURED),
])
def test_task_rules(numbers, expected):
    assert verdict.judge_task(numbers)[0] == expected


@pytest.mark.parametrize("numbers, expected", [
    (general_numbers(), verdict.KEPT),
    (general_numbers(tuned_correct=95), verdict.KEPT),               # 3 points: within noise
    (general_numbers(tuned_correct=88), verdict.FORGOT_SOME),        # 7.5 points
    (general_numbers(tuned_correct=70), verdict.FORGOT_LOT),         # 19 points
    (general_numbers(tuned_ppl=12.0), verdict.FORGOT_SOME),          # prose perplexity +20 %
    (general_numbers(tuned_ppl=16.0), verdict.FORGOT_LOT),           # +60 %
    (general_numbers(tuned_stop=0.6), verdict.FORGOT_SOME),          # ends 30 points fewer answers itself
    (general_numbers(tuned_stop=0.3), verdict.FORGOT_LOT),
])
def test_general_rules(numbers, expected):
    assert verdict.judge_general(numbers)[0] == expected


def test_advice_is_applicable_and_points_the_right_way():
    from studio.presets import apply_changes

    full = Project()
    full.method.method, full.train.learning_rate = "full", 1e-3
    tips = verdict.advice(full, verdict.LEARNED, verdict.FORGOT_LOT, 40)
    assert tips[0]["changes"]["method.method"] == "lora"
    assert any(t["changes"].get("train.learning_rate", 1) < 1e-3 for t in tips)
    slow = Project()
    slow.train.learning_rate, slow.method.rank, slow.method.alpha = 1e-6, 16, 8
    tips = verdict.advice(slow, verdict.NOT_LEARNED, verdict.KEPT, 40)
    assert tips[0]["changes"] == {"train.learning_rate": 2e-4}
    assert {"method.alpha": 32} in [t["changes"] for t in tips]
    for project, tips in ((full, verdict.advice(full, verdict.LEARNED, verdict.FORGOT_SOME, 40)),
                          (slow, verdict.advice(slow, verdict.NOT_LEARNED, verdict.KEPT, 40))):
        for tip in tips:
            apply_changes(project, tip["changes"])  # every change is a valid project setting
    good = verdict.verdict(Project(), task_numbers(11, 12, 20, 60), general_numbers(), None)
    assert good["tone"] == "good" and good["advice"] == [] and good["fix"] is None
    assert "learned your task and kept" in good["headline"]


def test_batched_answers_equal_one_at_a_time_even_with_the_trainers_attention(tiny_model_dir):
    """Left padding and the shared prefix must change no answer, also on a model the worker loaded with its
    packed-row attention (which transformers gives no padding mask unless the engine switches it)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from studio.evaluate.engine import HfEngine, padding_aware
    from studio.train import attention

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    name = attention.pick(Project(), "cpu", torch.float32, {})
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32, attn_implementation=name)
    prompts = general.prompts(tokenizer)[:5] + general.prompts(tokenizer, "Answer in one short sentence, please.")[:2]
    engine = HfEngine(model, tokenizer)
    batched = engine.generate(prompts, 8)
    assert [r.text for r in batched] == [engine.generate([p], 8)[0].text for p in prompts]
    assert model.config._attn_implementation == name  # switched back afterwards
    # Rows leave the batch when they end: the same tokens as transformers' generate, which computes them along.
    # The random model never picks its end token, so a token it does pick early becomes one.
    with torch.inference_mode(), padding_aware(model):
        engine.stop_ids = engine.stop_ids | {engine._library_generate(prompts, 8)[0][2]}
        library = [engine._reply(t) for t in engine._library_generate(prompts, 8)]
    pruned = engine.generate(prompts, 8)
    assert pruned == library and any(r.stopped for r in pruned) and not all(r.stopped for r in pruned)
    rows = [(p, p) for p in prompts]
    together = engine.nll(rows)
    alone = [engine.nll([row]) for row in rows]
    assert together[1] == sum(n for _, n in alone)
    assert abs(together[0] - sum(loss for loss, _ in alone)) < 1e-3 * together[0]


# --- real runs of the tiny model ------------------------------------------------------------------------------

@pytest.mark.slow
def test_an_adapter_that_learned_nothing(checked_run):
    run_dir, report, seen = checked_run
    assert read_report(report_path(run_dir)) == report
    assert report["schema"] == 1 and report["subject"]["kind"] == "adapter"
    task, checks = report["task"], report["general"]
    assert task["examples"] == 12 and len(task["rows"]) == 12 and task["source"].endswith("pirate_chat.jsonl")
    assert set(task["rows"][0]) >= {"where", "prompt", "reference", "base", "tuned", "base_score", "tuned_score",
                                    "closer"}
    # The project's default check, and the report says which it was.
    assert report["check"] == checks["check"] == "quick" and report["base"]["cached"] == []
    assert checks["questions"] == len(checks["rows"]) == len(general.check_questions("quick"))
    assert checks["of"] == len(general.questions()) and checks["prose_tokens"] == general.QUICK_PROSE_TOKENS
    assert checks["version"] == general.version("quick")
    # An adapter that changes nothing answers exactly as the base: the adapter switched off is the base, and
    # batching, padding and the shared prefix change no answer.
    assert all(r["base"] == r["tuned"] for r in task["rows"] + checks["rows"])
    assert task["closer"] == 0 and abs(task["base"]["answer_loss"] - task["tuned"]["answer_loss"]) < 1e-4
    v = report["verdict"]
    assert (v["learned"], v["kept"], v["tone"]) == (verdict.NOT_LEARNED, verdict.KEPT, "bad")
    assert v["fix"] and any("steps" in t["say"] for t in v["advice"])
    assert v["thresholds"]["learned"]["closer_share"] == verdict.LEARNED_SHARE
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)
    text = format_report(report)
    assert "did not learn" in text and task["rows"][5]["prompt"] in text
    assert f"quick check: {checks['questions']} of {checks['of']} general questions" in text
    assert "did not learn" in summary_line(report)
    assert not [p for p in (run_dir / "eval").iterdir() if p.name != "report.json"]


@pytest.mark.slow
def test_the_exported_gguf_is_checked_in_llama_cpp(checked_run):
    from studio.export import export_run

    run_dir, trained, _ = checked_run
    result = export_run(run_dir, ["q8_0"], check=False)
    assert result.evaluation and "report" in result.evaluation, result.evaluation
    report = read_report(report_path(run_dir, result.files["q8_0"]))
    assert report["subject"]["kind"] == "gguf" and report["subject"]["path"] == str(result.files["q8_0"])
    assert report["base"]["source"] == "cached from report.json"  # the base was not run again
    assert report["trained"]["accuracy"] == trained["general"]["tuned"]["accuracy"]
    assert len(report["task"]["rows"]) == 12 and len(report["general"]["rows"]) == len(general.check_questions("quick"))
    # The same weights in Q8_0: the answer loss barely moves from the trained weights' own.
    assert abs(report["task"]["tuned"]["answer_loss"] - trained["task"]["tuned"]["answer_loss"]) < 0.05
    on_disk = json.loads(result.report_path.read_text())
    assert on_disk["evaluation"]["summary"].startswith(result.files["q8_0"].name)


@pytest.mark.slow
def test_the_base_models_answers_are_kept_for_the_next_check(tmp_path, tiny_model_dir, sample_data, monkeypatch):
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    monkeypatch.setenv("FTSTUDIO_HOME", str(tmp_path / "home"))
    base = shutil.copytree(tiny_model_dir, tmp_path / "base")
    (tmp_path / "a").mkdir()
    first = evaluate_run(untrained_adapter_run(tmp_path / "a", base, sample_data))
    assert first["base"]["cached"] == [] and len(list((tmp_path / "home" / "eval-base").iterdir())) == 2
    # Another run of the project, the same base and check: the base is read back, not measured.
    run_dir = untrained_adapter_run(tmp_path / "a", base, sample_data)
    again = evaluate_run(run_dir)
    assert again["base"]["cached"] == ["general", "task"]
    for part in ("task", "general"):
        assert again[part]["base"] == first[part]["base"]
    assert [r["base"] for r in again["general"]["rows"]] == [r["base"] for r in first["general"]["rows"]]
    assert "kept from an earlier check" in format_report(again)
    # The other check asks other questions: measured anew (the held-out answers are the same and kept).
    thorough = evaluate_run(run_dir, check="thorough")
    assert thorough["base"]["cached"] == ["task"] and thorough["general"]["questions"] == len(general.questions())
    # Another base (new weights in the same folder): nothing is read back, and the numbers are the new base's.
    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(str(base))
    for weight in model.parameters():
        torch.nn.init.normal_(weight, std=0.05)
    model.save_pretrained(str(base))
    changed = evaluate_run(run_dir)
    assert changed["base"]["cached"] == []
    assert changed["general"]["base"]["prose_perplexity"] != first["general"]["base"]["prose_perplexity"]


def test_a_run_without_trained_weights_is_refused_in_words(tmp_path, tiny_model_dir, sample_data):
    run_dir = create_run(make_project(tmp_path, tiny_model_dir, sample_data))
    with pytest.raises(EvaluationError, match="no trained weights"):
        evaluate_run(run_dir)
    assert not (run_dir / "eval").exists()
    with pytest.raises(EvaluationError, match="does not exist"):
        evaluate_run(run_dir, gguf=tmp_path / "missing.gguf")


def test_a_cancelled_check_writes_nothing(tmp_path, tiny_model_dir, sample_data):
    from studio.errors import Cancelled

    run_dir = untrained_adapter_run(tmp_path, tiny_model_dir, sample_data)
    calls = []
    with pytest.raises(Cancelled):
        evaluate_run(run_dir, progress=lambda m, f: calls.append(f), cancelled=lambda: len(calls) >= 2)
    assert not (run_dir / "eval").exists() or not list((run_dir / "eval").iterdir())


@pytest.mark.slow
def test_a_run_with_no_held_out_split_still_checks_forgetting(tmp_path, tiny_model_dir, sample_data):
    run_dir = untrained_adapter_run(tmp_path, tiny_model_dir, sample_data, eval_fraction=0.0)
    report = evaluate_run(run_dir, check="thorough")
    assert report["task"] is None and "holds no examples out" in report["task_note"]
    assert report["verdict"]["learned"] == verdict.NOT_MEASURED
    assert report["verdict"]["fix"] == {"data.eval_fraction": 0.1}
    assert report["check"] == "thorough" and report["general"]["questions"] == len(general.questions()) >= 150
    assert "holds no examples out" in format_report(report)


@pytest.mark.slow
def test_the_worker_checks_each_finished_run(tmp_path, tiny_model_dir, sample_data):
    from studio.train import run_training
    from studio.train.events import read_events

    project = make_project(tmp_path, tiny_model_dir, sample_data)
    project.train.learning_rate = 1e-9  # learns nothing: the check must say so
    run_dir, final = run_training(project)
    assert final["type"] == "done", final
    report = read_report(report_path(run_dir))
    assert report["verdict"]["learned"] == verdict.NOT_LEARNED
    assert report["verdict"]["advice"][0]["changes"] == {"train.learning_rate": 2e-4}
    events = list(read_events(run_dir / "events.jsonl"))
    kinds = [e["type"] for e in events]
    last_check = max(i for i, e in enumerate(events) if "evaluation" in e)
    assert kinds.index("done") < last_check and events[last_check]["evaluation"]["report"] == str(report_path(run_dir))

    project.evaluate.after_training = False
    run_dir, final = run_training(project)
    assert final["type"] == "done" and not (run_dir / "eval").exists()


# --- the command line -----------------------------------------------------------------------------------------

def test_cli_eval_refuses_a_run_without_weights(tmp_path, tiny_model_dir, sample_data, capsys):
    from studio.cli import main

    run_dir = create_run(make_project(tmp_path, tiny_model_dir, sample_data))
    assert main(["eval", str(run_dir)]) == 2
    assert "no trained weights" in capsys.readouterr().err
    assert main(["runs", str(tmp_path / "check.ftproj.toml"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1 and rows[0]["method"] == "lora" and rows[0]["kept"] is None


@pytest.mark.slow
def test_cli_runs_lists_the_checked_run(checked_run, capsys):
    from studio.cli import main

    run_dir, report, _ = checked_run
    project_file = next(run_dir.parents[2].glob("*.ftproj.toml"))
    assert main(["runs", str(project_file)]) == 0
    out = capsys.readouterr().out
    assert "did not learn" not in out and "kept" in out and "0/12" in out and run_dir.name in out


# --- the Results page ---------------------------------------------------------------------------------------

@pytest.mark.slow
def test_results_page_shows_the_report_applies_advice_and_cancels(qtbot, checked_run, monkeypatch, tmp_path):
    monkeypatch.setenv("FTSTUDIO_HOME", str(tmp_path))
    from studio.project import load_project
    from ui.app import MainWindow
    from ui.pages.results import ResultsPage

    run_dir, report, _ = checked_run
    project = load_project(next(run_dir.parents[2].glob("*.ftproj.toml")))
    window = MainWindow(project)
    qtbot.addWidget(window)
    window.show()
    page = window.page(ResultsPage)
    window.go_to(ResultsPage)
    assert window.studio.run_dir == run_dir
    assert page.headline.text() == report["verdict"]["headline"]
    assert page.examples.rowCount() == 12 and page.examples.item(0, 0).text() == report["task"]["rows"][0]["prompt"]
    assert page.general.rowCount() == len(report["general"]["counts"]) + 3
    assert page.readiness() == (True, "did not learn · kept")
    qtbot.waitUntil(lambda: page.runs.rowCount() == 1, timeout=30_000)

    assert not page.apply_button.isHidden()
    page.apply_fix()
    assert project.train.max_steps == report["verdict"]["fix"]["train.max_steps"] and window.studio.dirty
    assert page.apply_button.isHidden() and "Applied to the project" in page.status.text()

    written = report_path(run_dir).stat().st_mtime_ns
    page.start_check(gguf=False)
    assert page.checking and not page.cancel_button.isHidden()
    page.cancel()
    # the core's own sentence ("The check was cancelled; nothing was written."), which may reach the window
    # after the thread has ended
    qtbot.waitUntil(lambda: not page.checking and "cancelled" in page.status.text(), timeout=120_000)
    assert report_path(run_dir).stat().st_mtime_ns == written
    window.studio.dirty = False


@pytest.mark.slow
def test_full_fine_tuning_at_a_high_learning_rate_forgets(tmp_path, sample_data):
    """The embedded model, fully fine-tuned at a LoRA-sized learning rate (50x the full-fine-tuning preset's):
    the check must see the damage and advise LoRA."""
    from studio.demo import demo_project
    from studio.train import run_training

    project = demo_project(tmp_path, steps=4)
    project.method.method = "full"
    project.train.learning_rate = 1e-3
    save_project(project, project.path)
    run_dir, final = run_training(project)
    assert final["type"] == "done", final
    report = read_report(report_path(run_dir))
    assert report["subject"]["kind"] == "model"
    assert report["verdict"]["kept"] in (verdict.FORGOT_SOME, verdict.FORGOT_LOT), report["verdict"]
    assert report["verdict"]["advice"][0]["changes"]["method.method"] == "lora"
    assert report["general"]["tuned"]["prose_perplexity"] > report["general"]["base"]["prose_perplexity"]
