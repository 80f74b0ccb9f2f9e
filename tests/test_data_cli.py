"""`ftstudio data inspect`: counts on every shipped sample and test file, JSON output, exit codes."""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from studio.data.command import register

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
SAMPLES = ROOT / "resources" / "samples"
# file -> (format, rows, usable rows); None where the file is refused as a whole.
EXPECTED = {
    "messages.jsonl": ("messages", 5, 5), "sharegpt.jsonl": ("sharegpt", 3, 3), "alpaca.json": ("alpaca", 3, 3),
    "alpaca_object.json": ("alpaca", 3, 3), "columns.json": ("prompt_completion", 2, 2),
    "qa.csv": ("prompt_completion", 3, 3), "pairs.tsv": ("prompt_completion", 2, 2),
    "prompt_completion.parquet": ("prompt_completion", 3, 3), "messages.parquet": ("messages", 2, 2),
    "notes.txt": ("text", 3, 3), "bom.jsonl": ("messages", 2, 2), "utf16.csv": ("prompt_completion", 2, 2),
    "truncated.jsonl": ("messages", 3, 2), "latin1.jsonl": ("messages", 3, 2), "roles.jsonl": ("messages", 2, 1),
    "empty_content.jsonl": ("messages", 3, 1), "no_assistant.jsonl": ("messages", 2, 1),
    "wrong_types.jsonl": ("messages", 6, 1), "template_system.jsonl": ("messages", 2, 2),
    "all_bad.jsonl": ("messages", 2, 0),
    "empty.jsonl": None, "blank.jsonl": None, "nomatch.csv": None, "really_csv.jsonl": None,
    "really_jsonl.csv": None, "really_zip.json": None, "not_parquet.parquet": None,
    "kitchen_qa.csv": ("prompt_completion", 10, 10), "garden_alpaca.json": ("alpaca", 10, 10),
    "lighthouse_notes.txt": ("text", 5, 5),
    "saved_by_libreoffice.xlsx": ("prompt_completion", 3, 3), "old_format.xls": ("prompt_completion", 3, 3),
    "password.xlsx": None,
}


def inspect(*argv):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["data", "inspect", *map(str, argv)])
    return args.func(args)


def test_every_test_file_is_listed():
    assert {p.name for p in DATA.iterdir()} <= set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_inspect_json_counts(name, capsys):
    path = DATA / name if (DATA / name).exists() else SAMPLES / name
    code = inspect(path, "--json")
    out = json.loads(capsys.readouterr().out)
    expected = EXPECTED[name]
    if expected is None:
        assert code == 2 and out["usable_rows"] == 0 and name in out["problems"][0]["message"]
        return
    fmt, rows, usable = expected
    assert (out["format"], out["rows"], out["usable_rows"]) == (fmt, rows, usable)
    assert code == (0 if usable else 2)
    assert len(out["problems"]) == rows - usable
    assert all(isinstance(p["row"], int) and name in p["message"] for p in out["problems"])


def test_pirate_sample_with_model_tokens(capsys):
    assert inspect(SAMPLES / "pirate_chat.jsonl", "--json", "--model", "embedded:SmolLM2-135M-Instruct") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rows"] == out["usable_rows"] == out["tokens"]["examples"] > 0
    assert out["tokens"]["truncated"] == 0


def test_text_output_lists_problems_with_rows(capsys):
    assert inspect(DATA / "truncated.jsonl") == 0
    text = capsys.readouterr().out
    assert "usable: 2" in text and "truncated.jsonl, line 3 is not valid JSON" in text


def test_through_the_ftstudio_command():
    if not (ROOT / "studio" / "cli.py").exists():
        pytest.skip("studio/cli.py is not written yet")
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, "-m", "studio.cli", "data", "inspect", str(DATA / "qa.csv"), "--json"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["usable_rows"] == 3
    bad = subprocess.run([sys.executable, "-m", "studio.cli", "data", "inspect", str(DATA / "empty.jsonl")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "empty.jsonl is empty" in bad.stderr
