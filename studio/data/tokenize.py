"""Render a conversation with the model's chat template and mark which tokens are trained on.

The trained tokens of a conversation are those of each assistant turn, including the end-of-turn token, so
the model learns both what to say and when to stop. Spans are found by rendering growing prefixes of the
conversation: the text of assistant turn i is what `messages[:i+1]` adds to `messages[:i]` rendered with a
generation prompt. Tokens are then mapped to those character spans through the tokenizer's offsets, so the
whole conversation is tokenized once, exactly as it will be seen at inference.

Message content is text, never markup: a row whose content holds a control token's text (`<|im_end|>`,
`<|endoftext|>`) would otherwise become a real turn boundary or end-of-text in training. Such rows are
tokenized piece by piece, the template's own text with its control tokens, the content as plain text.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

IGNORE = -100
# Templates a user can choose instead of the model's own (a base model may have none).
TEMPLATES = {
    "chatml": "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
              "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
}


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


class Piece(NamedTuple):
    """A stretch of rendered text for the token view: trained on or not, and cut off by the length limit."""
    text: str
    trained: bool
    truncated: bool = False


def render(tokenizer, messages: list[dict], add_generation_prompt: bool = False,
           chat_template: str | None = None) -> str:
    template = TEMPLATES.get(chat_template, chat_template) if chat_template else None
    if template is None and not getattr(tokenizer, "chat_template", None):
        raise TemplateError("the model has no chat template; choose one (ChatML) or use plain text data")
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt,
                                             chat_template=template)
    except Exception as exc:  # jinja raises its own errors (TemplateError, UndefinedError, ...)
        raise TemplateError(f"the model's chat template cannot render this conversation: {exc}") from None


def assistant_spans(tokenizer, messages: list[dict], chat_template: str | None = None
                    ) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of its assistant turns."""
    text = render(tokenizer, messages, chat_template=chat_template)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render(tokenizer, messages[:i], True, chat_template) if i else ""
        upto = render(tokenizer, messages[: i + 1], chat_template=chat_template)
        if not text.startswith(upto) or not upto.startswith(before):
            raise TemplateError("the chat template renders a conversation differently from its beginning, "
                                "so the answers cannot be located; choose 'train on all tokens'")
        spans.append((len(before), len(upto)))
    return text, spans


def control_texts(tokenizer) -> list[str]:
    """The text of every token the tokenizer matches as a whole wherever it appears (its added tokens:
    chat markers, end-of-text...)."""
    return [token for token in tokenizer.get_added_vocab() if token]


def holds_control_text(tokenizer, messages: list[dict]) -> bool:
    controls = control_texts(tokenizer)
    return any(control in str(m.get("content", "")) for m in messages for control in controls)


def content_spans(text: str, messages: list[dict]) -> list[tuple[int, int]]:
    """Where each message's content sits in the rendered conversation, in order."""
    spans, cursor = [], 0
    for message in messages:
        content = str(message.get("content", "")).strip()
        if not content:
            continue
        start = text.find(content, cursor)
        if start < 0:
            raise TemplateError("a message holds chat-control text (like <|im_end|>) and the chat template "
                                "changes its content, so it cannot be kept as plain text; remove that text")
        spans.append((start, start + len(content)))
        cursor = start + len(content)
    return spans


def encode_as_written(tokenizer, text: str, messages: list[dict]) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids and offsets of a rendered conversation, the template's markers as control tokens and every
    message's content as plain text."""
    if not holds_control_text(tokenizer, messages):  # the usual case: one pass over the whole text
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return list(encoded["input_ids"]), list(encoded["offset_mapping"])
    ids, offsets, cursor = [], [], 0
    pieces = []
    for start, end in content_spans(text, messages):
        pieces += [(cursor, start, False), (start, end, True)]
        cursor = end
    pieces.append((cursor, len(text), False))
    for start, end, is_content in pieces:
        if start == end:
            continue
        encoded = tokenizer(text[start:end], add_special_tokens=False, return_offsets_mapping=True,
                            split_special_tokens=is_content)
        ids += encoded["input_ids"]
        offsets += [(a + start, b + start) for a, b in encoded["offset_mapping"]]
    return ids, offsets


def encode_conversation(tokenizer, messages: list[dict], train_on: str = "assistant",
                        chat_template: str | None = None):
    """(rendered text, token ids, character offsets, labels) of a whole conversation, uncut."""
    text, spans = assistant_spans(tokenizer, messages, chat_template)
    ids, offsets = encode_as_written(tokenizer, text, messages)
    if train_on == "all":
        labels = list(ids)
    else:
        labels = [tok if any(s <= start < e for s, e in spans) else IGNORE for tok, (start, _) in zip(ids, offsets)]
    return text, ids, offsets, labels


def encode_text(tokenizer, text: str):
    """Plain text for continued pre-training: every token is trained on, ending with end-of-text. A literal
    "<|endoftext|>" in the text stays text; only the end added here is the real token."""
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, split_special_tokens=True)
    ids, offsets = list(encoded["input_ids"]), list(encoded["offset_mapping"])
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
        offsets.append((len(text), len(text)))
    return text, ids, offsets, list(ids)


def tokenize_conversation(tokenizer, messages: list[dict], max_len: int, train_on: str = "assistant",
                          chat_template: str | None = None) -> Example:
    _, ids, _, labels = encode_conversation(tokenizer, messages, train_on, chat_template)
    return Example(ids[:max_len], labels[:max_len], max(0, len(ids) - max_len))


def tokenize_text(tokenizer, text: str, max_len: int) -> list[Example]:
    """A document split into windows of max_len tokens: for pre-training text nothing is cut away."""
    _, ids, _, _ = encode_text(tokenizer, text)
    return [Example(ids[i:i + max_len], ids[i:i + max_len]) for i in range(0, len(ids), max_len)]


def pieces(tokenizer, encoded, max_len: int | None = None) -> list[Piece]:
    """Group the tokens of an encoding into stretches of text that are all trained on or all not.

    Each token owns the text from its start to the next token's start, so spaces and newlines that the
    tokenizer leaves out of its offsets are still shown.
    """
    text, ids, offsets, labels = encoded
    out: list[Piece] = []
    for i, (token, (start, _)) in enumerate(zip(ids, offsets)):
        start = 0 if i == 0 else start
        end = offsets[i + 1][0] if i + 1 < len(ids) else len(text)
        chunk = text[start:end] if start < len(text) else tokenizer.decode([token])  # the added end-of-text
        flag = (labels[i] != IGNORE, max_len is not None and i >= max_len)
        if out and (out[-1].trained, out[-1].truncated) == flag:
            out[-1] = Piece(out[-1].text + chunk, *flag)
        else:
            out.append(Piece(chunk, *flag))
    return out


def encode_row(tokenizer, row, train_on: str = "assistant", system_prompt: str = "",
               chat_template: str | None = None):
    """Encode a normalized Row (messages or plain text), adding the project's system prompt to
    conversations that have none."""
    if row.text is not None:
        return encode_text(tokenizer, row.text)
    messages = row.messages
    if system_prompt and messages[0]["role"] != "system":
        messages = [{"role": "system", "content": system_prompt}] + messages
    return encode_conversation(tokenizer, messages, train_on, chat_template)
