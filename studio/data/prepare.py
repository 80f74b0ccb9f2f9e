"""From the project's data settings to tokenized train and eval examples."""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from studio.data.tokenize import IGNORE, Example, TemplateError, tokenize_conversation
from studio.errors import DataError

Progress = Callable[[str, float], None]


@dataclass
class PreparedData:
    train: list[Example]
    eval: list[Example]
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (row number, reason)

    @property
    def train_tokens(self) -> int:
        return sum(len(e.input_ids) for e in self.train)


def read_message_rows(path: Path) -> list[tuple[int, list[dict]]]:
    """(line number, messages) for each row of a chat JSONL file."""
    if not path.is_file():
        raise DataError(f"The dataset file {path} does not exist. Choose the file again on the Data page.")
    rows = []
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path.name}, line {number}: not valid JSON ({exc.msg}).") from None
            messages = row.get("messages") if isinstance(row, dict) else None
            if not isinstance(messages, list):
                raise DataError(f"{path.name}, line {number}: no 'messages' list.")
            rows.append((number, messages))
    if not rows:
        raise DataError(f"The dataset file {path} holds no rows.")
    return rows


def prepare_dataset(project, tokenizer, progress: Progress | None = None) -> PreparedData:
    settings = project.data
    if not settings.train_file:
        raise DataError("No dataset file is chosen. Pick one on the Data page or set [data] train_file.")
    rows = read_message_rows(project.resolve(settings.train_file))
    eval_rows = read_message_rows(project.resolve(settings.eval_file)) if settings.eval_file else []
    if not eval_rows and settings.eval_fraction > 0 and len(rows) >= 10:
        shuffled = rows[:]
        random.Random(project.train.seed).shuffle(shuffled)
        n_eval = max(1, round(len(rows) * settings.eval_fraction))
        eval_rows, rows = shuffled[:n_eval], shuffled[n_eval:]
    out = PreparedData([], [])
    total = len(rows) + len(eval_rows)
    for index, (target, source) in enumerate(((out.train, rows), (out.eval, eval_rows))):
        for number, messages in source:
            if settings.system_prompt and messages and messages[0].get("role") != "system":
                messages = [{"role": "system", "content": settings.system_prompt}] + messages
            try:
                example = tokenize_conversation(tokenizer, messages, project.train.max_seq_len, settings.train_on)
            except TemplateError as exc:
                out.skipped.append((number, str(exc)))
                continue
            if all(label == IGNORE for label in example.labels):
                out.skipped.append((number, "no assistant tokens left after the sequence-length cut"))
                continue
            target.append(example)
            if progress and (len(out.train) + len(out.eval)) % 50 == 0:
                progress("Tokenizing", (len(out.train) + len(out.eval)) / total)
    if not out.train:
        raise DataError(f"No usable training example in {settings.train_file}.")
    return out
