"""The task check: on the run's held-out split, is the fine-tuned model closer to your answers than the base?

Two measures, base and fine-tuned side by side:
- the loss of your reference answers (answer tokens only, exactly as the trainer's eval loss counts them) and
  its perplexity: how likely each model finds the answers your data gives;
- each model's greedy answer to every held-out prompt, scored against your answer with chrF (sacrebleu).

Why chrF: it compares character n-grams, so "o'" against "of", "colour" against "color" or a changed word
ending earns partial credit, and it needs no word splitter, so answers in any language or script score
(rouge-score's default tokenizer keeps only a-z and 0-9 and would score Chinese or Cyrillic answers as 0).
sacrebleu is the reference implementation used across machine-translation papers. Scores run 0-100.

The held-out split comes from studio.data.prepare.read_split with the run's frozen project (the same rows
the trainer held out), so every run of a project is checked on the same examples.
"""
from __future__ import annotations

from dataclasses import dataclass

from studio.data.tokenize import IGNORE, TemplateError, tokenize_conversation, tokenize_text

MAX_EXAMPLES = 64       # held-out chats answered (the loss uses them all up to MAX_LOSS_ROWS)
MAX_LOSS_ROWS = 256
ANSWER_TOKENS_MIN, ANSWER_TOKENS_MAX = 32, 256
CLOSER_MARGIN = 1.0     # chrF points by which the fine-tuned answer must beat the base's to count as closer


@dataclass
class TaskInputs:
    source: str                               # "the held-out split of pirate_chat.jsonl"
    rows: list[dict]                          # {"where", "prompt", "reference"} of each chat example answered
    prompts: list[list[int]]                  # their prompt token ids, ready for an answer
    loss_rows: list[tuple[list[int], list[int]]]  # (ids, labels) for the answer loss
    answer_tokens: int                        # the generation limit for this data
    note: str = ""                            # why something could not be measured, in plain words


def prepare(project, tokenizer, held_out_rows, where) -> TaskInputs:
    """Token ids of the held-out rows: chats become a prompt plus your reference answer; plain text rows
    (continued pre-training) only have a loss."""
    from studio.data.prepare import with_system

    settings = project.data
    source = (f"the eval file {_name(settings.eval_file)}" if settings.eval_file
              else f"the held-out split of {_name(settings.train_file)}")
    rows, prompts, loss_rows, longest = [], [], [], 0
    for row in held_out_rows:
        if len(loss_rows) >= MAX_LOSS_ROWS:
            break
        if row.text is not None:
            loss_rows.extend((e.input_ids, e.labels) for e in tokenize_text(tokenizer, row.text,
                                                                             project.train.max_seq_len))
            continue
        messages = with_system(row.messages, settings.system_prompt)
        try:
            example = tokenize_conversation(tokenizer, messages, project.train.max_seq_len, settings.train_on)
        except TemplateError:
            continue
        if any(label != IGNORE for label in example.labels):
            loss_rows.append((example.input_ids, example.labels))
        if messages[-1]["role"] != "assistant" or len(rows) >= MAX_EXAMPLES:
            continue
        prompt = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=True,
                                               return_dict=True)["input_ids"]
        reference = messages[-1]["content"]
        longest = max(longest, len(tokenizer(reference, add_special_tokens=False)["input_ids"]))
        rows.append({"where": where(row.number), "prompt": _last_user(messages), "reference": reference})
        prompts.append(prompt)
    limit = min(ANSWER_TOKENS_MAX, max(ANSWER_TOKENS_MIN, int(longest * 1.5) + 8))
    note = "" if loss_rows else (f"{source} holds no example the model can be checked on.")
    return TaskInputs(source, rows, prompts, loss_rows, limit, note)


def _name(path: str) -> str:
    from pathlib import Path
    return Path(path).name


def _last_user(messages: list[dict]) -> str:
    return next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")


def chrf(answer: str, reference: str) -> float:
    from sacrebleu.metrics import CHRF

    return float(CHRF().sentence_score(answer, [reference]).score)


def metric_name() -> str:
    import sacrebleu
    return f"chrF (sacrebleu {sacrebleu.__version__})"


def compare(inputs: TaskInputs, base: dict, tuned: dict) -> dict:
    """The task section of the report from both sides' replies and losses."""
    import math

    table = []
    for row, b, t in zip(inputs.rows, base["replies"], tuned["replies"]):
        b_score, t_score = chrf(b.text, row["reference"]), chrf(t.text, row["reference"])
        table.append({**row, "base": b.text, "tuned": t.text, "base_score": round(b_score, 1),
                      "tuned_score": round(t_score, 1), "closer": t_score > b_score + CLOSER_MARGIN})

    def side(s: dict, key: str) -> dict:
        loss = s["loss"]
        return {"answer_loss": loss, "perplexity": math.exp(loss) if loss is not None else None,
                "score": (sum(r[key] for r in table) / len(table)) if table else None}

    return {"source": inputs.source, "examples": len(table), "loss_examples": len(inputs.loss_rows),
            "metric": metric_name(), "answer_tokens": inputs.answer_tokens, "closer_margin": CLOSER_MARGIN,
            "base": side(base, "base_score"), "tuned": side(tuned, "tuned_score"),
            "closer": sum(r["closer"] for r in table), "rows": table}
