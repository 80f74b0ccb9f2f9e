"""Recognise which dataset format the rows follow, and turn each row into chat messages or plain text.

Every format ends as one of two shapes: a list of {"role", "content"} messages (system/user/assistant), or
a plain text document that is trained on in full. A row that cannot take that shape gets a sentence saying
exactly what is wrong with it; the caller decides whether to skip it or stop.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from studio.errors import DataError

FORMATS = ("messages", "sharegpt", "alpaca", "prompt_completion", "text")
# The roles each format's mapping can name; the first ones are required.
FIELDS = {"messages": ("messages",), "sharegpt": ("conversations",),
          "alpaca": ("instruction", "output", "input", "system"),
          "prompt_completion": ("prompt", "completion", "system"), "text": ("text",)}
REQUIRED = {"messages": 1, "sharegpt": 1, "alpaca": 2, "prompt_completion": 2, "text": 1}
# Column pairs that mean "the question" and "the answer", tried in this order.
PAIRS = [("prompt", "completion"), ("prompt", "response"), ("prompt", "answer"), ("question", "answer"),
         ("question", "response"), ("query", "response"), ("query", "answer"), ("input", "output"),
         ("instruction", "response"), ("instruction", "answer"), ("user", "assistant"), ("human", "assistant"),
         ("human", "gpt"), ("source", "target"), ("context", "response"), ("request", "response")]
SYSTEM_COLUMNS = ("system", "system_prompt")
TEXT_COLUMNS = ("text", "content", "document", "body", "passage")
# Role names used by the formats in the wild, mapped to the three roles a chat template knows.
ROLES = {"system": "system", "user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant",
         "bot": "assistant", "model": "assistant", "chatgpt": "assistant"}
SAMPLE = 200  # rows looked at to detect the format


class Row(NamedTuple):
    number: int
    messages: list[dict] | None = None  # [{"role": ..., "content": ...}, ...]
    text: str | None = None  # plain text rows, trained on every token
    origin: str | None = None  # where a person finds it: "Examples, row 7", "manual.pdf, page 4"


class Unsaved(str):
    """An empty cell value that says why it is empty (a formula whose result the file does not hold)."""

    def __new__(cls, reason: str):
        value = super().__new__(cls, "")
        value.reason = reason
        return value


@dataclass
class Detection:
    format: str
    mapping: dict[str, str]  # format field -> column in the file
    evidence: list[str] = field(default_factory=list)


def detect(sample: list[dict]) -> Detection | None:
    """Guess the format from the column names and value shapes of the first rows; None when nothing fits."""
    counts = Counter(key for row in sample for key in row)
    columns = {key.lower(): key for key in counts}
    n = len(sample)

    def seen(col: str) -> str:
        return f"in {counts[col]} of the first {n} rows"

    for col in counts:
        shapes = Counter(_turn_shape(row.get(col)) for row in sample if col in row)
        shape, hits = shapes.most_common(1)[0]
        if shape == "messages":
            return Detection("messages", {"messages": col},
                             [f"column '{col}' holds lists of role/content messages ({hits} of {n} rows)"])
        if shape == "sharegpt":
            return Detection("sharegpt", {"conversations": col},
                             [f"column '{col}' holds lists of from/value turns ({hits} of {n} rows)"])
    for name, fmt, key in (("messages", "messages", "messages"), ("conversations", "sharegpt", "conversations")):
        if name in columns:  # the usual name, even when its values are malformed: rows will say how
            return Detection(fmt, {key: columns[name]}, [f"column '{columns[name]}' ({seen(columns[name])})"])
    system = next((columns[c] for c in SYSTEM_COLUMNS if c in columns), None)
    if "instruction" in columns and "output" in columns:
        mapping = {"instruction": columns["instruction"], "output": columns["output"]}
        evidence = [f"columns '{mapping['instruction']}' and '{mapping['output']}' ({seen(mapping['output'])})"]
        if "input" in columns:
            mapping["input"] = columns["input"]
            evidence.append(f"optional column '{mapping['input']}' is added to the instruction")
        if system:
            mapping["system"] = system
        return Detection("alpaca", mapping, evidence)
    for prompt, completion in PAIRS:
        if prompt in columns and completion in columns:
            mapping = {"prompt": columns[prompt], "completion": columns[completion]}
            if system:
                mapping["system"] = system
            return Detection("prompt_completion", mapping,
                             [f"columns '{mapping['prompt']}' (question) and '{mapping['completion']}' (answer) "
                              f"({seen(mapping['completion'])})"])
    for name in TEXT_COLUMNS:
        if name in columns:
            return Detection("text", {"text": columns[name]},
                             [f"column '{columns[name]}' holds plain text ({seen(columns[name])})"])
    return None


def _turn_shape(value: Any) -> str | None:
    if not isinstance(value, list) or not value or not isinstance(value[0], dict):
        return None
    keys = value[0].keys()
    if "role" in keys and ("content" in keys or "text" in keys):
        return "messages"
    if "from" in keys and "value" in keys:
        return "sharegpt"
    return None


def resolve(fmt: str, columns: dict[str, str], sample: list[dict], name: str) -> Detection:
    """The format and column mapping to use: detected, or chosen by the user (project or GUI)."""
    found = detect(sample)
    if fmt == "auto" and columns:
        fmt = next((f for f in FORMATS if set(columns) & set(FIELDS[f][:REQUIRED[f]])), "auto")
    if fmt == "auto":
        if found is None:
            present = ", ".join(f"'{c}'" for c in dict.fromkeys(k for row in sample for k in row)) or "none"
            raise DataError(f"{name}: the columns ({present}) match no dataset format Fine-Tune Studio knows; "
                            "choose which column is the question and which the answer on the Data page.")
        return found
    if fmt not in FORMATS:
        raise DataError(f"{name}: '{fmt}' is not a dataset format; choose one of {', '.join(FORMATS)}.")
    unknown = set(columns) - set(FIELDS[fmt])
    if unknown:
        raise DataError(f"{name}: '{sorted(unknown)[0]}' is not a field of the {fmt} format; "
                        f"its fields are {', '.join(FIELDS[fmt])}.")
    mapping = dict(found.mapping) if found and found.format == fmt else {}
    mapping.update(columns)
    for needed in FIELDS[fmt][:REQUIRED[fmt]]:
        mapping.setdefault(needed, needed)
    present = {k for row in sample for k in row}
    for role, column in mapping.items():
        if column not in present:
            raise DataError(f"{name}: the column '{column}' chosen for {role} is not in the file; its columns "
                            f"are {', '.join(sorted(present)) or 'none'}.")
    chosen = "chosen in the project" if columns or fmt != (found.format if found else None) else "detected"
    evidence = [f"format {fmt} {chosen}; " + ", ".join(f"{k} = column '{v}'" for k, v in mapping.items())]
    return Detection(fmt, mapping, evidence)


def normalize(number: int, value: Any, detection: Detection) -> tuple[Row | None, str | None]:
    """One record as a Row, or a sentence (without the file and row) saying what is wrong with it."""
    if not isinstance(value, dict):
        return None, f"is {_kind(value)}, not an object with named fields"
    fmt, mapping = detection.format, detection.mapping
    if fmt in ("messages", "sharegpt"):
        column = mapping[FIELDS[fmt][0]]
        keys = ("role", "content") if fmt == "messages" else ("from", "value")
        if column not in value:
            return None, f"has no '{column}' field"
        return _conversation(number, value[column], column, *keys)
    if fmt == "text":
        text, error = _field(value, mapping["text"])
        return (Row(number, text=text), None) if error is None else (None, error)
    ask, answer = ("instruction", "output") if fmt == "alpaca" else ("prompt", "completion")
    question, error = _field(value, mapping[ask])
    if error is None:
        reply, error = _field(value, mapping[answer])
    if error:
        return None, error
    if fmt == "alpaca" and mapping.get("input") and _plain(value.get(mapping["input"])):
        question = f"{question}\n\n{_plain(value[mapping['input']])}"
    messages = [{"role": "user", "content": question}, {"role": "assistant", "content": reply}]
    system = _plain(value.get(mapping["system"])) if mapping.get("system") else ""
    if system:
        messages.insert(0, {"role": "system", "content": system})
    return Row(number, messages), None


def _conversation(number: int, turns: Any, column: str, role_key: str, content_key: str):
    if not isinstance(turns, list):
        return None, f"'{column}' is {_kind(turns)}, not a list of messages"
    if not turns:
        return None, f"'{column}' is an empty list: there is no message"
    messages = []
    for i, turn in enumerate(turns, start=1):
        if not isinstance(turn, dict):
            return None, f"message {i} is {_kind(turn)}, not an object with '{role_key}' and '{content_key}'"
        if turn.get(role_key) is None:
            return None, f"message {i} has no '{role_key}'"
        role = ROLES.get(str(turn[role_key]).strip().lower())
        if role is None:
            return None, (f"message {i} has the role '{turn[role_key]}', which is not system, user or "
                          "assistant")
        key = content_key if content_key in turn or "text" not in turn else "text"
        content, error = _field(turn, key, f"message {i} ({role})")
        if error:
            return None, error
        messages.append({"role": role, "content": content})
    if not any(m["role"] == "assistant" for m in messages):
        return None, "has no assistant message, so there is no answer to learn from"
    return Row(number, messages), None


def _field(row: dict, key: str, what: str | None = None) -> tuple[str | None, str | None]:
    """The text in row[key], or why there is none. Numbers are accepted as text; lists of text parts
    (the OpenAI content-parts form) are joined."""
    what = what or f"'{key}'"
    if key not in row:
        return None, f"has no {what} field" if what.startswith("'") else f"{what} has no '{key}'"
    value = row[key]
    if value is None:
        return None, f"{what} is empty (null)"
    if isinstance(value, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in value):
        value = "".join(str(p.get("text", "")) for p in value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None, f"{what} is {_kind(value)}, not text"
    if isinstance(value, Unsaved):
        return None, f"{what} {value.reason}"
    if not value.strip():
        return None, f"{what} is empty"
    return value, None


def _plain(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "text", bool: "true/false", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)
