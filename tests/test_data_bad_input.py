"""Every kind of bad input gives a sentence naming the file and the row, and loses nothing."""
from pathlib import Path

import pytest

from studio.data import inspect_file
from studio.errors import DataError

DATA = Path(__file__).parent / "data"


def problems(name):
    report = inspect_file(DATA / name)
    assert report.rows == report.usable_rows + report.problem_count  # nothing silently dropped
    return report, {p.row: p.message for p in report.problems}


def test_truncated_json_line():
    report, found = problems("truncated.jsonl")
    assert report.usable_rows == 2 and list(found) == [3]
    assert found[3].startswith("truncated.jsonl, line 3 is not valid JSON") and "cut off" in found[3]


def test_non_utf8_bytes_are_named_by_line_and_column():
    report, found = problems("latin1.jsonl")
    assert report.usable_rows == 2 and list(found) == [2]
    assert "latin1.jsonl, line 2" in found[2] and "0xE9" in found[2] and "UTF-8" in found[2]


def test_unknown_role():
    _, found = problems("roles.jsonl")
    assert found == {2: "roles.jsonl, line 2, message 1 has the role 'narrator', which is not system, user or "
                        "assistant."}


def test_message_with_no_content():
    _, found = problems("empty_content.jsonl")
    assert found[2] == "empty_content.jsonl, line 2, message 2 (assistant) is empty."
    assert found[3] == "empty_content.jsonl, line 3, message 1 (user) has no 'content'."


def test_conversation_with_no_assistant_turn():
    _, found = problems("no_assistant.jsonl")
    assert list(found) == [1] and "no assistant message" in found[1]


def test_wrong_types_and_missing_fields():
    report, found = problems("wrong_types.jsonl")
    assert report.usable_rows == 1 and sorted(found) == [1, 2, 3, 4, 5]
    assert "'messages' is text, not a list" in found[1]
    assert "line 2 is a list, not an object" in found[2]
    assert "message 2 (assistant) is a list, not text" in found[3]
    assert "message 2 is text, not an object" in found[4]
    assert "line 5 has no 'messages' field" in found[5]


def test_every_row_bad_still_lists_each():
    report, found = problems("all_bad.jsonl")
    assert report.usable_rows == 0 and not report.usable and sorted(found) == [1, 2]


@pytest.mark.parametrize("name,words", [
    ("empty.jsonl", "is empty"),
    ("blank.jsonl", "only blank lines"),
    ("nomatch.csv", "'name', 'age', 'city'"),
    ("really_csv.jsonl", "looks like CSV"),
    ("really_jsonl.csv", "looks like JSON"),
    ("really_zip.json", "ZIP archive"),
    ("not_parquet.parquet", "not a Parquet file"),
])
def test_unusable_files_are_refused_with_a_sentence(name, words):
    with pytest.raises(DataError) as caught:
        inspect_file(DATA / name)
    assert name in str(caught.value) and words in str(caught.value)


def test_missing_file_and_mapping_to_a_missing_column():
    with pytest.raises(DataError, match="does not exist"):
        inspect_file(DATA / "nothing-here.jsonl")
    with pytest.raises(DataError, match="the column 'query' chosen for prompt is not in the file"):
        inspect_file(DATA / "qa.csv", columns={"prompt": "query"})


def test_csv_row_with_too_many_columns(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("prompt,completion\nhi,hello\nunquoted, comma,here\n", encoding="utf-8")
    report = inspect_file(path)
    assert report.usable_rows == 1 and "line 3 has 3 columns but the header has 2" in report.problems[0].message


def test_non_utf8_csv_row(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(b"prompt,completion\nhi,hello\ncaf\xe9,ok\n")
    report = inspect_file(path)
    assert report.usable_rows == 1 and report.problems[0].row == 3 and "0xE9" in report.problems[0].message


def test_line_cut_inside_a_string(tmp_path):
    path = tmp_path / "cut.jsonl"
    path.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "a", "completion": "unfini\n')
    report = inspect_file(path)
    assert report.problems[0].message == ("cut.jsonl, line 2 is not valid JSON: Unterminated string starting at "
                                          "column 31 (the line ends before the JSON is complete: it looks cut off).")
