"""The token view and the prepared training data, with the embedded model's real tokenizer."""
import copy
from pathlib import Path

import pytest

from studio.data import IGNORE, Row, highlight, inspect_file, prepare_dataset, scan, token_stats
from studio.data.stats import histogram
from studio.errors import DataError
from studio.project import Project

DATA = Path(__file__).parent / "data"
# Like some models' templates (Gemma, early Mistral): no system role.
NO_SYSTEM = ("{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
             "{% endif %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
             "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from studio.models import resolve_model

    return AutoTokenizer.from_pretrained(str(resolve_model("embedded:SmolLM2-135M-Instruct")))


def rows_of(name, **kw):
    _, _, pairs = scan(DATA / name, **kw)
    return [row for row, problem in pairs if problem is None]


def test_highlight_trains_on_answers_only(tokenizer):
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there"}]
    pieces = highlight(messages, tokenizer)
    assert "".join(p.text for p in pieces) == tokenizer.apply_chat_template(messages, tokenize=False)
    trained = "".join(p.text for p in pieces if p.trained)
    assert trained.startswith("Hello there") and "<|im_end|>" in trained and "Hi" not in trained
    everything = highlight(messages, tokenizer, train_on="all")
    assert all(p.trained for p in everything)


def test_highlight_marks_what_the_cutoff_removes(tokenizer):
    pieces = highlight(rows_of("messages.jsonl")[1], tokenizer, max_seq_len=20)
    assert pieces[-1].truncated and not pieces[0].truncated
    text = highlight(Row(1, text="Some plain words."), tokenizer)
    assert all(p.trained for p in text) and text[-1].text.endswith(tokenizer.eos_token)


def test_token_stats_count_truncation(tokenizer):
    rows = rows_of("messages.jsonl")
    full = token_stats(rows, tokenizer, max_seq_len=1024)
    assert full.examples == 5 and full.truncated == 0 and full.tokens_lost == 0
    assert sum(c for _, _, c in full.histogram) == 5
    cut = token_stats(rows, tokenizer, max_seq_len=40)
    longer = [n for n in full.lengths if n > 40]
    assert cut.truncated == len(longer) > 0 and cut.tokens_lost == sum(n - 40 for n in longer)
    assert sum(cut.trained) < sum(full.trained)
    assert any(lo >= 40 for lo, _, c in cut.histogram if c)  # the cut examples show beyond the cutoff edge


def test_histogram_puts_the_cutoff_on_an_edge():
    bins = histogram([1, 100, 101, 250], cutoff=100)
    assert (0, 10, 1) in bins and (90, 100, 1) in bins and (100, 110, 1) in bins
    assert sum(c for _, _, c in bins) == 4


def test_a_role_the_template_cannot_render(tokenizer):
    strict = copy.deepcopy(tokenizer)
    strict.chat_template = NO_SYSTEM
    stats = token_stats(rows_of("template_system.jsonl"), strict, 256, name="template_system.jsonl", unit="line")
    assert stats.examples == 1 and [p.row for p in stats.problems] == [1]
    assert stats.problems[0].message.startswith("template_system.jsonl, line 1: the model's chat template cannot")
    assert "System role not supported" in stats.problems[0].message


def test_chosen_template_for_a_model_without_one(tokenizer):
    bare = copy.deepcopy(tokenizer)
    bare.chat_template = None
    row = rows_of("pairs.tsv")[0]
    assert "<|im_start|>user\nping" in "".join(p.text for p in highlight(row, bare, chat_template="chatml"))


def project_for(tmp_path, name, **data):
    project = Project(path=tmp_path / "p.ftproj.toml")
    project.data.train_file = str(DATA / name)
    for key, value in data.items():
        setattr(project.data, key, value)
    return project


def test_prepare_every_format(tmp_path, tokenizer):
    for name in ["messages.jsonl", "sharegpt.jsonl", "alpaca.json", "qa.csv", "pairs.tsv",
                 "prompt_completion.parquet", "notes.txt"]:
        data = prepare_dataset(project_for(tmp_path, name), tokenizer, use_cache=False)
        assert data.train and not data.skipped, name
        for example in data.train:
            assert len(example.input_ids) == len(example.labels)
            assert any(label != IGNORE for label in example.labels)


def test_prepare_skips_or_stops_on_bad_rows(tmp_path, tokenizer):
    data = prepare_dataset(project_for(tmp_path, "wrong_types.jsonl"), tokenizer, use_cache=False)
    assert len(data.train) == 1 and [row for row, _ in data.skipped] == [1, 2, 3, 4, 5]
    with pytest.raises(DataError, match="wrong_types.jsonl, line 1"):
        prepare_dataset(project_for(tmp_path, "wrong_types.jsonl", skip_bad_rows=False), tokenizer, use_cache=False)


def test_prepare_drops_duplicates_and_uses_an_eval_file(tmp_path, tokenizer):
    project = project_for(tmp_path, "messages.jsonl", drop_duplicates=True, eval_file=str(DATA / "sharegpt.jsonl"))
    data = prepare_dataset(project, tokenizer, use_cache=False)
    assert len(data.train) == 4 and len(data.eval) == 3
    assert data.skipped == [(6, "messages.jsonl, line 6: repeats an earlier row (duplicates removed).")]


def test_prepare_is_cached_and_the_key_follows_the_settings(tmp_path, tokenizer, monkeypatch):
    monkeypatch.setenv("FTSTUDIO_HOME", str(tmp_path / "home"))
    project = project_for(tmp_path, "qa.csv")
    first = prepare_dataset(project, tokenizer)
    again = prepare_dataset(project, tokenizer)
    assert not first.from_cache and again.from_cache
    assert [e.input_ids for e in again.train] == [e.input_ids for e in first.train]
    assert [e.labels for e in again.train] == [e.labels for e in first.train]
    project.data.train_on = "all"
    assert not prepare_dataset(project, tokenizer).from_cache


def test_prepare_splits_off_a_seeded_eval_set(tmp_path, tokenizer):
    lines = "".join(f'{{"prompt": "q{i}", "completion": "a{i}"}}\n' for i in range(40))
    (tmp_path / "forty.jsonl").write_text(lines)
    project = project_for(tmp_path, str(tmp_path / "forty.jsonl"), eval_fraction=0.25)
    data = prepare_dataset(project, tokenizer, use_cache=False)
    assert (len(data.train), len(data.eval)) == (30, 10)
    assert inspect_file(tmp_path / "forty.jsonl").usable_rows == 40
