"""Inspect a dataset: what format it is, how many rows are usable, and every problem with its row number.

Reading is streamed, so a file of any size is inspected with flat memory (duplicates are found through an
8-byte fingerprint per row). The result is a plain object the GUI draws and the CLI prints.
"""
from __future__ import annotations

import re
import time
from array import array
from dataclasses import asdict, dataclass, field
from itertools import chain
from pathlib import Path
from typing import Iterator

from studio.data.formats import SAMPLE, Detection, Row, normalize, resolve
from studio.data.readers import Source, open_source
from studio.errors import Cancelled, DataError
from studio.progress import Cancel, Progress
from studio.vocabulary import ROW_FORMAT_WORDS

MAX_PROBLEMS = 1000  # problems kept with their text; all are counted
EVERY = 2000  # rows between progress reports and cancel checks
PREVIEW_CHARS = 2000  # of each text in a preview row: a 50 MB row must not become a 50 MB report
# The text of chat-control tokens of the common template families. In content they are trained as plain text
# (studio.data.tokenize), but a row holding them was likely copied from a rendered chat by mistake.
CONTROL_TEXT = re.compile(r"<\|(?:im_start|im_end|endoftext|eot_id|start_header_id|end_header_id|begin_of_text|"
                          r"end_of_text|system|user|assistant|end)\|>|<(?:start|end)_of_turn>|\[/?INST\]|</s>")


@dataclass
class Problem:
    row: int
    message: str  # a whole sentence naming the file and the row


@dataclass
class InspectReport:
    path: str
    kind: str  # how the file was read: jsonl, json, csv, tsv, parquet, txt, hf, sheet, documents
    unit: str  # what a row number counts: line, item, row
    format: str  # messages, sharegpt, alpaca, prompt_completion, text
    mapping: dict[str, str]
    evidence: list[str]
    rows: int = 0
    usable_rows: int = 0
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0  # all problems, even beyond the MAX_PROBLEMS kept in `problems`
    duplicates: int = 0  # usable rows that repeat an earlier row exactly
    duplicate_rows: list[tuple[int, int]] = field(default_factory=list)  # (row, the earlier row), first 100
    warnings: list[Problem] = field(default_factory=list)  # usable rows worth a look (first MAX_PROBLEMS)
    warning_count: int = 0
    preview: list[Row] = field(default_factory=list)
    seconds: float = 0.0
    sheet: str = ""  # the sheet read, for a workbook
    sheets: list[str] = field(default_factory=list)  # a workbook's sheets that hold data

    @property
    def rows_word(self) -> str:
        return "passages" if self.kind == "documents" else "rows"

    @property
    def usable(self) -> bool:
        return self.usable_rows > 0

    def layout(self, plain: bool = False) -> str:
        """How the rows are laid out: the format's name ("alpaca format"), or in plain words ("instructions and
        answers")."""
        if plain:
            return "documents" if self.kind == "documents" else \
                ROW_FORMAT_WORDS.get(self.format, self.format)
        return f"{self.format} format"

    def summary(self, plain: bool = False) -> str:
        skipped = self.rows - self.usable_rows
        name = Path(self.path).name + (f", sheet '{self.sheet}'" if self.sheet else "")
        text = (f"{name}: {self.layout(plain)}, {self.rows} {self.rows_word}, {self.usable_rows} usable, "
                f"{skipped} with problems")
        return text + (f", {self.duplicates} duplicates." if self.duplicates else ".")

    def duplicate_messages(self) -> list[str]:
        """A sentence for each duplicate found (the first 100), naming the file and both rows."""
        name = Path(self.path).name
        return [f"{name}, {self.unit} {row} repeats {self.unit} {earlier} (a duplicate)."
                for row, earlier in self.duplicate_rows]

    def to_dict(self) -> dict:
        out = asdict(self)
        out["preview"] = [capped(row._asdict()) for row in self.preview]
        out["problems"] = [asdict(p) for p in self.problems]
        out["warnings"] = [asdict(p) for p in self.warnings]
        out["usable"] = self.usable
        return out


def capped(value, limit: int = PREVIEW_CHARS):
    """A preview value with every text cut to `limit` characters, saying how much was left out."""
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + f"… ({len(value) - limit:,} more characters)"
    if isinstance(value, dict):
        return {key: capped(item, limit) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [capped(item, limit) for item in value]
    return value


def control_text_warning(row: Row, where: str) -> Problem | None:
    """A warning for a row whose text holds chat-control markers such as <|im_end|>."""
    texts = [row.text] if row.text is not None else [m["content"] for m in row.messages]
    found = next((m.group(0) for text in texts for m in [CONTROL_TEXT.search(text or "")] if m), None)
    if found is None:
        return None
    return Problem(row.number, f"{where} contains the chat-control text {found!r}; it is trained on as plain "
                               "text, not as a turn boundary or an end of text. Remove it if the row was copied "
                               "from a rendered chat.")


def scan(location: str | Path, fmt: str = "auto", columns: dict[str, str] | None = None,
         progress: Progress | None = None, cancel: Cancel | None = None, sheet: str = ""):
    """Open a dataset and decide its format; return (source, detection, iterator of (Row or None, Problem
    or None)). The iterator reports progress and honours cancel as it goes. `sheet` chooses a workbook's
    sheet."""
    source = open_source(location, sheet)
    source.watch(progress, cancel)
    records = source.records()
    head, found = [], 0
    need = 1 if source.kind == "documents" else SAMPLE  # passages are always text; a PDF page is slow
    for record in records:
        head.append(record)
        found += isinstance(record.value, dict)
        if found >= need:
            break
    sample = [r.value for r in head if isinstance(r.value, dict)]
    if not sample:
        if not head:
            raise DataError(f"{source.name} holds no rows: there is nothing to train on.")
        first = head[0]
        reason = first.error or "is not an object with named fields"
        raise DataError(f"No row of {source.name} can be read: {source.where(first.number)} {reason}.")
    detection = resolve(fmt, columns or {}, sample, source.name)
    if source.kind == "txt":
        detection.evidence = ["a plain text file: documents are separated by blank lines"]
    if source.kind == "documents":
        detection.evidence = ["documents, for teaching the model their material"]
    detection.evidence += source.notes(detection.mapping)
    return source, detection, _rows(source, detection, chain(head, records), progress, cancel)


def _rows(source: Source, detection: Detection, records, progress, cancel) -> Iterator[tuple]:
    label = f"Reading {source.name}"
    for count, record in enumerate(records, start=1):
        if count % EVERY == 0:
            if cancel and cancel():
                raise Cancelled(f"Reading {source.name} was cancelled.")
            if progress:
                progress(label, source.fraction())
        else:
            source.tick()  # slow rows (PDF pages, big sheets) still report every 0.2 s
        error = record.error
        if error is None:
            row, error = normalize(record.number, record.value, detection)
            if row is not None:
                origin = source.origin(record.number)
                yield (row._replace(origin=origin) if origin else row), None
                continue
        sep = ", " if error.startswith(("message", "'")) else " "  # "line 3, message 2 ..." / "line 3 is ..."
        yield None, Problem(record.number, f"{source.where(record.number)}{sep}{error}.")
    if progress:
        progress(label, 1.0)


def fingerprint(row: Row) -> int:
    """A 64-bit hash of what the row teaches; equal rows give equal numbers within one process."""
    if row.text is not None:
        return hash(row.text)
    return hash(tuple((m["role"], m["content"]) for m in row.messages))


def inspect_file(location: str | Path, fmt: str = "auto", columns: dict[str, str] | None = None,
                 progress: Progress | None = None, cancel: Cancel | None = None,
                 preview: int = 20, sheet: str = "") -> InspectReport:
    started = time.perf_counter()
    source, detection, rows = scan(location, fmt, columns, progress, cancel, sheet)
    report = InspectReport(str(location), source.kind, source.unit, detection.format, detection.mapping,
                           detection.evidence, sheet=source.sheet, sheets=list(source.sheets))
    hashes, numbers = array("q"), array("q")
    for row, problem in rows:
        report.rows += 1
        if problem:
            report.problem_count += 1
            if len(report.problems) < MAX_PROBLEMS:
                report.problems.append(problem)
            continue
        report.usable_rows += 1
        if len(report.preview) < preview:
            report.preview.append(row)
        if warning := control_text_warning(row, source.where(row.number)):
            report.warning_count += 1
            if len(report.warnings) < MAX_PROBLEMS:
                report.warnings.append(warning)
        hashes.append(fingerprint(row))
        numbers.append(row.number)
    report.duplicates, report.duplicate_rows = _duplicates(hashes, numbers)
    report.seconds = time.perf_counter() - started
    return report


def _duplicates(hashes: array, numbers: array) -> tuple[int, list[tuple[int, int]]]:
    """How many rows repeat an earlier one, and the first 100 as (row, earlier row)."""
    import numpy as np

    if not hashes:
        return 0, []
    values = np.frombuffer(hashes, dtype=np.int64)
    _, first, inverse = np.unique(values, return_index=True, return_inverse=True)
    is_repeat = np.ones(len(values), dtype=bool)
    is_repeat[first] = False
    repeats = np.flatnonzero(is_repeat)
    originals = first[inverse[repeats[:100]]]
    return int(len(repeats)), [(int(numbers[i]), int(numbers[j])) for i, j in zip(repeats[:100], originals)]
