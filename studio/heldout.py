"""The held-out examples of a run: the evaluation rows the model never trained on, as a prompt and the
answer the dataset gives, so the Test page can ask both models a question whose reference answer is known.

It takes the split the trainer makes (studio.data.prepare.read_split) from the run's frozen project, so
"held out" here means exactly what the eval loss was measured on."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from studio.data.prepare import read_split, with_system
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
    _, rows, _, source = read_split(project)
    examples = []
    for row in rows:
        messages = row.messages
        if not messages or messages[-1]["role"] != "assistant":
            continue  # plain text rows have no question to ask
        prompt = with_system(messages[:-1], project.data.system_prompt)
        examples.append(HeldOutExample(source.where(row.number), prompt, messages[-1]["content"]))
        if len(examples) >= n:
            break
    return examples
