"""Render a conversation with the model's chat template and mark which tokens are trained on.

The trained tokens of a conversation are those of each assistant turn, including the end-of-turn token, so
the model learns both what to say and when to stop. Spans are found by rendering growing prefixes of the
conversation: the text of assistant turn i is what `messages[:i+1]` adds to `messages[:i]` rendered with a
generation prompt. Tokens are then mapped to those character spans through the tokenizer's offsets, so the
whole conversation is tokenized once, exactly as it will be seen at inference.
"""
from __future__ import annotations

from dataclasses import dataclass

IGNORE = -100


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]
    truncated_tokens: int = 0  # how many tokens were cut at the sequence-length limit

    @property
    def trained_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE)


class TemplateError(ValueError):
    """The chat template cannot render these messages (unknown role, missing template...)."""


def render(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    except Exception as exc:  # jinja raises its own errors (TemplateError, UndefinedError, ...)
        raise TemplateError(f"the model's chat template cannot render this conversation: {exc}") from None


def assistant_spans(tokenizer, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of its assistant turns."""
    text = render(tokenizer, messages)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render(tokenizer, messages[:i], add_generation_prompt=True) if i else ""
        upto = render(tokenizer, messages[: i + 1])
        if not text.startswith(upto) or not upto.startswith(before):
            raise TemplateError("the chat template renders a conversation differently from its beginning, "
                                "so the answers cannot be located; choose 'train on all tokens'")
        spans.append((len(before), len(upto)))
    return text, spans


def tokenize_conversation(tokenizer, messages: list[dict], max_len: int, train_on: str = "assistant") -> Example:
    text, spans = assistant_spans(tokenizer, messages)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
    if train_on == "all":
        labels = list(ids)
    else:
        labels = [tok if any(s <= start < e for s, e in spans) else IGNORE for tok, (start, _) in zip(ids, offsets)]
    cut = max(0, len(ids) - max_len)
    return Example(ids[:max_len], labels[:max_len], cut)


def tokenize_text(tokenizer, text: str, max_len: int) -> Example:
    """Plain text for continued pre-training: every token is trained on, ending with end-of-text."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        ids = ids + [tokenizer.eos_token_id]
    cut = max(0, len(ids) - max_len)
    return Example(ids[:max_len], list(ids[:max_len]), cut)
