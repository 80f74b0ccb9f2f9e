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

Two checks ([evaluate] check in the project, `ftstudio eval --thorough`):
- "quick" (the default): a fixed subset, the same for every run and every project: in each category, the
  questions at positions where i * 3 // 5 steps up (i counted from 1 within the category in file order: the 2nd,
  4th and 5th of every five), so 3 in 5 of each kind, spread over the file; and the first QUICK_PROSE_TOKENS
  tokens of the prose. About 100 questions: a fine-tune that flips answers both ways (a strong style does) moves
  this accuracy by a few points more than the full set's, so a "forgot some" that rests on accuracy alone is
  worth a thorough check.
- "thorough": every question and all of the prose.
Each check has its own fingerprint (`version`), so numbers from the two are never compared as if they were one.
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
CHECKS = ("quick", "thorough")
QUICK_PART = (3, 5)  # the quick check keeps 3 of every 5 questions of each category
QUICK_PROSE_TOKENS = 4 * PROSE_WINDOW


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


def check_questions(check: str = "thorough") -> tuple[Question, ...]:
    """The questions a check asks: all of them, or the quick check's fixed 3 in 5 of each category."""
    if check == "thorough":
        return questions()
    if check != "quick":
        raise ValueError(f"unknown check {check!r}: one of {', '.join(CHECKS)}")
    keep, every = QUICK_PART
    seen: dict[str, int] = {}
    chosen = []
    for q in questions():
        i = seen[q.category] = seen.get(q.category, 0) + 1
        if i * keep // every > (i - 1) * keep // every:
            chosen.append(q)
    return tuple(chosen)


def prose() -> str:
    return PROSE_FILE.read_text(encoding="utf-8")


def version(check: str = "thorough") -> str:
    """A short fingerprint of the check set and the check, so numbers measured on another version or with the
    other check are never mixed in (the thorough check keeps the fingerprint reports had before there were two)."""
    digest = hashlib.sha256(QUESTIONS_FILE.read_bytes() + b"\0" + PROSE_FILE.read_bytes()).hexdigest()
    if check == "thorough":
        return digest[:12]
    asked = ",".join(q.id for q in check_questions(check))
    return hashlib.sha256(f"{digest}|{check}|{asked}|{QUICK_PROSE_TOKENS}".encode()).hexdigest()[:12]


def _normal(text: str) -> str:
    return " " + " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower()).split()) + " "


def is_right(question: Question, reply: str) -> bool:
    said = _normal(reply)
    return any(_normal(answer) in said for answer in question.accept)


def prompts(tokenizer, system_prompt: str = "", check: str = "thorough") -> list[list[int]]:
    """Each question as the chat prompt the model answers, with the project's system prompt when it has one."""
    from studio.data.prepare import with_system

    return [tokenizer.apply_chat_template(with_system([{"role": "user", "content": q.question}], system_prompt),
                                          add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
            for q in check_questions(check)]


def prose_rows(tokenizer, check: str = "thorough") -> list[tuple[list[int], list[int]]]:
    """The prose as (ids, labels) windows; every token counts."""
    ids = tokenizer(prose(), add_special_tokens=False)["input_ids"]
    if check != "thorough":
        ids = ids[:QUICK_PROSE_TOKENS]
    return [(ids[i:i + PROSE_WINDOW], ids[i:i + PROSE_WINDOW]) for i in range(0, len(ids), PROSE_WINDOW)]


def summarize(replies, check: str = "thorough") -> dict:
    """One model's side: accuracy overall and per category, how often it stopped on its own, each reply."""
    qs = check_questions(check)
    right = [is_right(q, r.text) for q, r in zip(qs, replies)]
    categories: dict[str, list[bool]] = {}
    for q, ok in zip(qs, right):
        categories.setdefault(q.category, []).append(ok)
    return {"accuracy": sum(right) / len(qs), "correct": sum(right),
            "stopped": sum(r.stopped for r in replies) / len(qs),
            "categories": {c: sum(v) / len(v) for c, v in categories.items()},
            "replies": [r.text for r in replies], "right": right}


def compare(base: dict, tuned: dict, check: str = "thorough", prose_tokens: int | None = None) -> dict:
    """The general section of the report from both sides' summaries (and prose perplexities)."""
    qs = check_questions(check)
    rows = [{"id": q.id, "category": q.category, "question": q.question, "accepted": list(q.accept),
             "base": b, "tuned": t, "base_right": br, "tuned_right": tr}
            for q, b, t, br, tr in zip(qs, base["replies"], tuned["replies"], base["right"], tuned["right"])]
    side = lambda s: {k: s[k] for k in ("accuracy", "correct", "stopped", "categories", "prose_perplexity")}  # noqa: E731
    return {"check": check, "questions": len(qs), "of": len(questions()), "prose_tokens": prose_tokens,
            "version": version(check), "answer_tokens": ANSWER_TOKENS,
            "base": side(base), "tuned": side(tuned),
            "lost": [r["id"] for r in rows if r["base_right"] and not r["tuned_right"]],
            "gained": [r["id"] for r in rows if r["tuned_right"] and not r["base_right"]],
            "counts": {c: sum(q.category == c for q in qs) for c in dict.fromkeys(q.category for q in qs)},
            "rows": rows}
