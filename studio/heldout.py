"""The held-out examples of a run: the evaluation rows the model never trained on, as a prompt and the
answer the dataset gives, so the Test page can ask both models a question whose reference answer is known.

It rebuilds the split the trainer made (studio.data.prepare): same frozen project, same usable rows, same
seed, so "held out" here means exactly what the eval loss was measured on."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from studio.data.inspect import fingerprint, scan
from studio.data.prepare import locate
from studio.data.split import split_rows
from studio.train.runs import load_run_project


@dataclass
class HeldOutExample:
    where: str            # "pirate_chat.jsonl, line 12": how the app names the row
    messages: list[dict]  # the conversation up to (not including) the last answer
    reference: str        # the dataset's last answer, to compare the models' replies with

    @property
    def question(self) -> str:
        return next((m["content"] for m in reversed(self.messages) if m["role"] == "user"), "")


def held_out_examples(run_dir: Path, n: int = 20) -> list[HeldOutExample]:
    """Up to `n` held-out chat examples of the run; [] when the run holds none out (or trains on plain text)."""
    project = load_run_project(run_dir)
    settings = project.data
    if settings.eval_file:
        source, rows = _usable_rows(locate(project, settings.eval_file), settings)
    else:
        source, rows = _usable_rows(locate(project, settings.train_file), settings)
        if settings.drop_duplicates:
            rows = _without_duplicates(rows)
        rows = split_rows(rows, settings.eval_fraction, seed=project.train.seed)[1]
    examples = []
    for row in rows:
        messages = row.messages
        if not messages or messages[-1]["role"] != "assistant":
            continue  # plain text rows have no question to ask
        prompt = messages[:-1]
        if settings.system_prompt and prompt[0]["role"] != "system":
            prompt = [{"role": "system", "content": settings.system_prompt}] + prompt
        examples.append(HeldOutExample(source.where(row.number), prompt, messages[-1]["content"]))
        if len(examples) >= n:
            break
    return examples


def _usable_rows(location: str, settings):
    source, _, records = scan(location, settings.format, settings.columns)
    return source, [row for row, problem in records if problem is None]


def _without_duplicates(rows):
    seen, kept = set(), []
    for row in rows:
        mark = fingerprint(row)
        if mark not in seen:
            seen.add(mark)
            kept.append(row)
    return kept
