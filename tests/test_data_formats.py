"""Every reader and every dataset format, on real files in tests/data."""
import json
from pathlib import Path

import pytest

from studio.data import inspect_file, split_rows
from studio.errors import Cancelled

DATA = Path(__file__).parent / "data"


def test_messages_jsonl_multi_turn_with_duplicates():
    report = inspect_file(DATA / "messages.jsonl")
    assert (report.kind, report.format, report.rows, report.usable_rows) == ("jsonl", "messages", 5, 5)
    assert report.duplicates == 1 and report.duplicate_rows == [(6, 1)]  # line numbers count the blank line
    multi = report.preview[1]
    assert [m["role"] for m in multi.messages] == ["system", "user", "assistant", "user", "assistant"]
    assert "messages" in report.evidence[0]


def test_sharegpt_roles_are_mapped():
    report = inspect_file(DATA / "sharegpt.jsonl")
    assert (report.format, report.usable_rows) == ("sharegpt", 3)
    assert [m["role"] for m in report.preview[1].messages] == ["system", "user", "assistant"]


@pytest.mark.parametrize("name", ["alpaca.json", "alpaca_object.json"])
def test_alpaca_json_array_and_object(name):
    report = inspect_file(DATA / name)
    assert (report.kind, report.format, report.unit, report.usable_rows) == ("json", "alpaca", "item", 3)
    first = report.preview[0].messages
    assert first[0]["content"] == "Summarize the sentence.\n\nThe cat sat on the warm mat all afternoon."
    assert report.preview[1].messages[0]["content"] == "Give a synonym for 'quick'."  # empty input adds nothing


def test_column_oriented_json_question_answer():
    report = inspect_file(DATA / "columns.json")
    assert report.format == "prompt_completion" and report.mapping == {"prompt": "question", "completion": "answer"}
    assert report.preview[1].messages[1]["content"] == "2"


def test_csv_with_quoted_commas_and_newlines():
    report = inspect_file(DATA / "qa.csv")
    assert (report.format, report.rows, report.usable_rows, report.problem_count) == ("prompt_completion", 3, 3, 0)
    assert [r.number for r in report.preview] == [2, 4, 5]  # the line each record starts on
    assert report.preview[0].messages[0]["content"] == "Hello, who are you?"
    assert report.preview[0].messages[1]["content"] == "I am a helper.\nI answer questions."
    assert report.preview[1].messages[1]["content"] == 'Plain, answer with a "quote"'
    assert report.preview[2].messages[0]["content"] == "Multi\nline\nquestion"


def test_tsv_input_output_pair():
    report = inspect_file(DATA / "pairs.tsv")
    assert (report.kind, report.format, report.usable_rows) == ("tsv", "prompt_completion", 2)
    assert report.preview[0].messages == [{"role": "user", "content": "ping"}, {"role": "assistant", "content": "pong"}]


@pytest.mark.parametrize("name,fmt", [("prompt_completion.parquet", "prompt_completion"), ("messages.parquet", "messages")])
def test_parquet(name, fmt):
    report = inspect_file(DATA / name)
    assert (report.kind, report.format, report.problem_count) == ("parquet", fmt, 0)
    assert report.usable_rows == report.rows > 0


def test_plain_text_split_into_documents():
    report = inspect_file(DATA / "notes.txt")
    assert (report.format, report.rows) == ("text", 3)
    assert [r.number for r in report.preview] == [1, 5, 7]
    assert report.preview[0].text == "The first document is a short paragraph\nthat spans two lines."


def test_utf8_bom_and_utf16_are_read():
    assert inspect_file(DATA / "bom.jsonl").preview[0].messages[0]["content"] == "Café?"
    report = inspect_file(DATA / "utf16.csv")
    assert report.preview[0].messages == [{"role": "user", "content": "naïve"}, {"role": "assistant", "content": "café"}]


def test_explicit_mapping_overrides_detection(tmp_path):
    path = tmp_path / "odd.csv"
    path.write_text("ask,reply,notes\nWhy?,Because.,x\n", encoding="utf-8")
    report = inspect_file(path, columns={"prompt": "ask", "completion": "reply"})
    assert report.format == "prompt_completion" and report.usable_rows == 1
    assert "chosen" in report.evidence[0]
    # And a chosen format can reuse a detected mapping: the qa.csv questions as plain text.
    text = inspect_file(DATA / "qa.csv", fmt="text", columns={"text": "question"})
    assert text.preview[0].text == "Hello, who are you?"


def test_hugging_face_dataset_folders(tmp_path):
    import datasets

    rows = [json.loads(line) for line in (DATA / "sharegpt.jsonl").read_text().splitlines()]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "saved"))
    report = inspect_file(tmp_path / "saved")
    assert (report.kind, report.format, report.usable_rows) == ("hf", "sharegpt", 3)
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "train.jsonl").write_bytes((DATA / "messages.jsonl").read_bytes())
    assert inspect_file(tmp_path / "files").usable_rows == 5


def test_large_file_streams_with_progress_and_cancel(tmp_path):
    path = tmp_path / "many.jsonl"
    line = json.dumps({"prompt": "p", "completion": "c"})
    path.write_text("\n".join([line] * 9000) + "\n")
    seen = []
    report = inspect_file(path, progress=lambda message, fraction: seen.append(fraction))
    assert report.usable_rows == 9000 and report.duplicates == 8999 and len(report.preview) == 20
    assert seen[-1] == 1.0 and all(0 <= f <= 1 for f in seen) and len(seen) >= 4
    with pytest.raises(Cancelled):
        inspect_file(path, cancel=lambda: True)


def test_split_is_seeded_and_complete():
    rows = list(range(100))
    train, held = split_rows(rows, eval_fraction=0.1, seed=1)
    assert len(held) == 10 and sorted(train + held) == rows
    assert split_rows(rows, 0.1, seed=1) == (train, held) and split_rows(rows, 0.1, seed=2) != (train, held)
    assert len(split_rows(rows, eval_count=7)[1]) == 7
    assert split_rows(rows[:5], 0.5) == (rows[:5], [])  # too few rows to hold any out
