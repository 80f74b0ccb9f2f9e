"""The general check: did training take away what the base model already knew?

The check set ships in resources/checks/ and was written for this project (no download):
- general.jsonl: short questions with the answers accepted for each (facts, arithmetic, common sense, following
  a simple instruction). A reply is right when it contains an accepted answer as whole words, ignoring case
  and punctuation, so "Arr! The capital o' China be Beijing" counts: the check is about knowledge, not style.
  No question repeats the shipped pirate sample's topics, so training on it cannot answer them.
- prose.txt: about 2,000 tokens of plain encyclopedic prose; its perplexity under the fine-tuned model,
  against the base's, shows whether ordinary language got less likely.
Both models answer every question greedily with the same token limit; a reply that ends with the model's own
end-of-turn token within that limit "stopped on its own" (a fine-tune that rambles past it has forgotten how to
end an answer).
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import lru_cache

from studio.paths import RESOURCES

CHECKS = RESOURCES / "checks"
QUESTIONS_FILE, PROSE_FILE = CHECKS / "general.jsonl", CHECKS / "prose.txt"
ANSWER_TOKENS = 24   # enough for a short answer even after a stylistic opening ("Arr, me hearty! ...")
PROSE_WINDOW = 256   # tokens per perplexity window


@dataclass(frozen=True)
class Question:
    id: str
    category: str
    question: str
    accept: tuple[str, ...]


@lru_cache(maxsize=1)
def questions() -> tuple[Question, ...]:
    rows = [json.loads(line) for line in QUESTIONS_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]
    return tuple(Question(r["id"], r["category"], r["question"], tuple(r["accept"])) for r in rows)


def prose() -> str:
    return PROSE_FILE.read_text(encoding="utf-8")


def version() -> str:
    """A short fingerprint of the check set, so numbers measured on another version are never mixed in."""
    digest = hashlib.sha256(QUESTIONS_FILE.read_bytes() + b"\0" + PROSE_FILE.read_bytes()).hexdigest()
    return digest[:12]


def _normal(text: str) -> str:
    return " " + " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower()).split()) + " "


def is_right(question: Question, reply: str) -> bool:
    said = _normal(reply)
    return any(_normal(answer) in said for answer in question.accept)


def prompts(tokenizer, system_prompt: str = "") -> list[list[int]]:
    """Each question as the chat prompt the model answers, with the project's system prompt when it has one."""
    from studio.data.prepare import with_system

    return [tokenizer.apply_chat_template(with_system([{"role": "user", "content": q.question}], system_prompt),
                                          add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
            for q in questions()]


def prose_rows(tokenizer) -> list[tuple[list[int], list[int]]]:
    """The prose as (ids, labels) windows; every token counts."""
    ids = tokenizer(prose(), add_special_tokens=False)["input_ids"]
    return [(ids[i:i + PROSE_WINDOW], ids[i:i + PROSE_WINDOW]) for i in range(0, len(ids), PROSE_WINDOW)]


def summarize(replies) -> dict:
    """One model's side: accuracy overall and per category, how often it stopped on its own, each reply."""
    qs = questions()
    right = [is_right(q, r.text) for q, r in zip(qs, replies)]
    categories: dict[str, list[bool]] = {}
    for q, ok in zip(qs, right):
        categories.setdefault(q.category, []).append(ok)
    return {"accuracy": sum(right) / len(qs), "correct": sum(right),
            "stopped": sum(r.stopped for r in replies) / len(qs),
            "categories": {c: sum(v) / len(v) for c, v in categories.items()},
            "replies": [r.text for r in replies], "right": right}


def compare(base: dict, tuned: dict) -> dict:
    """The general section of the report from both sides' summaries (and prose perplexities)."""
    qs = questions()
    rows = [{"id": q.id, "category": q.category, "question": q.question, "accepted": list(q.accept),
             "base": b, "tuned": t, "base_right": br, "tuned_right": tr}
            for q, b, t, br, tr in zip(qs, base["replies"], tuned["replies"], base["right"], tuned["right"])]
    side = lambda s: {k: s[k] for k in ("accuracy", "correct", "stopped", "categories", "prose_perplexity")}  # noqa: E731
    return {"questions": len(qs), "version": version(), "answer_tokens": ANSWER_TOKENS,
            "base": side(base), "tuned": side(tuned),
            "lost": [r["id"] for r in rows if r["base_right"] and not r["tuned_right"]],
            "gained": [r["id"] for r in rows if r["tuned_right"] and not r["base_right"]],
            "counts": {c: sum(q.category == c for q in qs) for c in dict.fromkeys(q.category for q in qs)},
            "rows": rows}
