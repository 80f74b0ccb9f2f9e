"""Read a dataset file row by row, whatever its kind, without loading a large file into memory.

Every reader yields `Record(number, value, error)`: the row number as the user counts it (the line in a
JSONL/CSV/TXT file, the item in a JSON array, the row in a Parquet file or Hugging Face dataset), and either
the parsed value or a sentence saying why that row could not be read. A bad row never stops the reading, so
the report can list every problem at once. Problems with the whole file raise DataError.
"""
from __future__ import annotations

import csv
import io
import json
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple

from studio.errors import Cancelled, DataError

# A few million-character CSV fields exist in real datasets (long documents); the default limit is 131072.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))

KINDS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv",
         ".parquet": "parquet", ".txt": "txt", ".text": "txt"}
# Spreadsheets (studio.data.sheets) and documents (studio.data.documents) have readers of their own.
SHEETS = (".xlsx", ".xlsm", ".ods", ".xls")
DOCUMENTS = (".md", ".markdown", ".docx", ".pdf")
# A .json file above this size is read as JSON Lines or refused: json.load would need ~10x its size in memory.
JSON_LOAD_LIMIT = 300 * 1024 * 1024
# Leading bytes of common files that people pick by mistake.
MAGIC = [(b"PAR1", "a Parquet file"), (b"PK\x03\x04", "a ZIP archive (or an Excel/Word file)"),
         (b"%PDF", "a PDF document"), (b"\x1f\x8b", "a gzip-compressed file"), (b"SQLite format 3", "an SQLite database"),
         (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image")]
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class Record(NamedTuple):
    number: int
    value: Any
    error: str | None = None


class Source:
    """One opened dataset: its kind, the word for its rows, and a generator of records.

    `fraction()` tells how much of the input has been read, for the progress bar.
    """

    def __init__(self, path: Path, kind: str, unit: str, total: int = 0):
        self.path, self.kind, self.unit, self.total = path, kind, unit, total
        self.done = 0
        self.name = path.name if kind != "hf" else str(path)
        self.sheet, self.sheets = "", []  # the sheet read and the sheets with data, for workbooks
        self._progress: Callable[[str, float], None] | None = None
        self._cancel: Callable[[], bool] | None = None
        self._last = 0.0

    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0

    def where(self, number: int) -> str:
        """'data.jsonl, line 7': how messages name a row."""
        return f"{self.name}, {self.unit} {number}"

    def origin(self, number: int) -> str | None:
        """Where the preview says a row comes from, when its number alone does not say it."""
        return None

    def notes(self, mapping: dict[str, str]) -> list[str]:
        """What a person should know about how the input was read (columns left out, files skipped)."""
        return []

    def watch(self, progress: Callable[[str, float], None] | None, cancel: Callable[[], bool] | None) -> None:
        self._progress, self._cancel = progress, cancel

    def tick(self) -> None:
        """Report progress and honour cancel, at most five times a second: readers whose rows come slowly
        (a PDF page, a workbook's header search) call this as they go."""
        now = time.monotonic()
        if now - self._last < 0.2:
            return
        self._last = now
        if self._cancel and self._cancel():
            raise Cancelled(f"Reading {self.name} was cancelled.")
        if self._progress:
            self._progress(f"Reading {self.name}", self.fraction())

    def records(self) -> Iterator[Record]:
        reader = {"jsonl": _jsonl, "json": _json, "csv": _csv, "tsv": _csv, "txt": _txt,
                  "parquet": _parquet, "hf": _hf}[self.kind]
        return reader(self)


def open_source(location: str | Path, sheet: str = "") -> Source:
    """Look at a file (or dataset folder, folder of documents, or Hub id) and decide how to read it,
    refusing what we cannot. `sheet` chooses a workbook's sheet (default: the first with data)."""
    from studio.data import documents, sheets

    path = Path(location).expanduser()
    if not path.exists():
        if HUB_ID.match(str(location)) and not str(location).startswith((".", "/", "~")):
            return Source(Path(str(location)), "hf", "row")
        raise DataError(f"The dataset file {path} does not exist. Choose the file again on the Data page.")
    if path.is_dir():
        return documents.DocumentSource(path) if documents.is_document_folder(path) else Source(path, "hf", "row")
    suffix = path.suffix.lower()
    kind = KINDS.get(suffix)
    if kind is None and suffix not in SHEETS + DOCUMENTS:
        raise DataError(f"{path.name}: Fine-Tune Studio cannot read '{path.suffix or 'extensionless'}' files; "
                        "use .jsonl, .json, .csv, .tsv, .parquet, .xlsx, .ods, .xls, .txt, .md, .docx or .pdf.")
    size = path.stat().st_size
    if size == 0:
        raise DataError(f"{path.name} is empty: there is nothing to train on.")
    if suffix in SHEETS:
        return sheets.SheetSource(path, sheet)
    if suffix in DOCUMENTS:
        return documents.DocumentSource(path)
    with path.open("rb") as handle:
        head = handle.read(4096)
    if not head.strip(b" \t\r\n\xef\xbb\xbf"):
        what = "is empty" if size == 0 else "holds only blank lines"
        raise DataError(f"{path.name} {what}: there is nothing to train on.")
    _check_content_matches(path, kind, head)
    if kind == "json" and _is_json_lines(path, size):
        kind = "jsonl"  # many '.json' datasets are really one object per line
    unit = {"jsonl": "line", "csv": "line", "tsv": "line", "txt": "line", "json": "item", "parquet": "row"}[kind]
    return Source(path, kind, unit, size)


def _check_content_matches(path: Path, kind: str, head: bytes) -> None:
    """Refuse a file whose content is not what its extension says, naming what it looks like instead."""
    for magic, what in MAGIC:
        if head.startswith(magic):
            if kind == "parquet" and magic == b"PAR1":
                return
            raise DataError(f"{path.name} is {what}, not a {path.suffix} file; export your data as "
                            ".jsonl, .csv or .parquet and choose that file.")
    if kind == "parquet":
        raise DataError(f"{path.name} is not a Parquet file (it does not start with the Parquet signature); "
                        "check the file or its extension.")
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError(f"{path.name} is a binary file, not text; check that you chose the right file.")
    first = _first_line(head)
    if kind in ("jsonl", "json") and first and first[0] not in "{[":
        looks = "CSV (comma-separated columns)" if first.count(",") >= 1 else "plain text"
        raise DataError(f"{path.name}, line 1: does not start with '{{' or '[' so it is not JSON; it looks like "
                        f"{looks}. Rename the file to match its content or export it again as JSON.")
    if kind in ("csv", "tsv") and first[:1] in ("{", "["):
        raise DataError(f"{path.name}, line 1: starts with '{first[0]}', so this looks like JSON, not "
                        f"{kind.upper()}; rename it to .jsonl or .json.")


def _first_line(head: bytes) -> str:
    text = _decode_head(head)
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def _decode_head(head: bytes) -> str:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head.decode("utf-16", errors="ignore")
    return head.decode("utf-8-sig", errors="ignore")


def _is_json_lines(path: Path, size: int) -> bool:
    """True when the first non-blank line is a complete JSON value on its own and more text follows."""
    with _text_lines(path) as lines:
        first = None
        for number, line, error in lines:
            if error or not line.strip():
                continue
            if first is None:
                try:
                    json.loads(line)
                except json.JSONDecodeError:
                    return False  # a pretty-printed document; one too big is refused when read
                first = line
            else:
                return True
    return False


class _text_lines:
    """Context manager yielding (line number, text, error) for each line of a UTF-8 or UTF-16 file.

    UTF-8 is decoded line by line, so one line with foreign bytes is reported with its number and position
    instead of aborting the file. UTF-16 is recognised by its byte-order mark.
    """

    def __init__(self, path: Path, source: Source | None = None):
        self.path, self.source = path, source

    def __enter__(self) -> Iterator[tuple[int, str, str | None]]:
        self.handle = self.path.open("rb")
        return self._lines()

    def __exit__(self, *exc) -> None:
        self.handle.close()

    def _lines(self):
        start = self.handle.read(2)
        self.handle.seek(0)
        if start in (b"\xff\xfe", b"\xfe\xff"):
            text = io.TextIOWrapper(self.handle, encoding="utf-16", newline="")
            for number, line in enumerate(text, start=1):
                if self.source:
                    self.source.done = self.handle.tell()
                yield number, line, None
            return
        for number, raw in enumerate(self.handle, start=1):
            if self.source:
                self.source.done += len(raw)
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                yield number, raw.decode("utf-8"), None
            except UnicodeDecodeError as exc:
                yield number, "", _not_utf8(raw, exc)


def _not_utf8(raw: bytes, exc: UnicodeDecodeError) -> str:
    byte = raw[exc.start]
    guess = " (it may be saved as Windows-1252 or Latin-1)" if 0x80 <= byte <= 0xFF else ""
    return (f"holds byte 0x{byte:02X} at column {exc.start + 1}, which is not UTF-8 text{guess}; "
            "save the file as UTF-8")


def _jsonl(source: Source) -> Iterator[Record]:
    with _text_lines(source.path, source) as lines:
        for number, line, error in lines:
            if error:
                yield Record(number, None, error)
                continue
            if not line.strip():
                continue
            line = line.rstrip("\r\n")  # so error columns count within the line
            try:
                yield Record(number, json.loads(line))
            except json.JSONDecodeError as exc:
                ended = exc.pos >= len(line.rstrip()) or exc.msg.startswith("Unterminated string")
                cut = " (the line ends before the JSON is complete: it looks cut off)" if ended else ""
                message = exc.msg.removesuffix(" at")  # "Unterminated string starting at"
                yield Record(number, None, f"is not valid JSON: {message} at column {exc.colno}{cut}")


def _json(source: Source) -> Iterator[Record]:
    """A JSON array of rows, an object holding one list of rows, or an object of equal-length columns."""
    if source.total > JSON_LOAD_LIMIT:
        raise DataError(f"{source.name} is a single JSON document of {source.total // 2**20} MB, too large to "
                        "read at once; save it as JSON Lines (.jsonl), one row per line.")
    raw = source.path.read_bytes()
    try:
        data = json.loads(raw.decode("utf-16" if raw.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"))
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"{source.name}, line {line}: {_not_utf8(raw, exc)}.") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{source.name}, line {exc.lineno}: not valid JSON ({exc.msg} at column {exc.colno}); "
                        "the file may be cut off or hand-edited.") from None
    source.done = source.total
    rows = _rows_of(data, source.name)
    for index, row in enumerate(rows, start=1):
        yield Record(index, row)


def _rows_of(data: Any, name: str) -> list:
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(data) == 1 and lists and all(isinstance(r, dict) for r in lists[0][:100]):
            return lists[0]  # {"data": [...]} or {"train": [...]}
        if lists and len(lists) == len(data) and len({len(v) for v in lists}) == 1:
            keys = list(data)
            return [dict(zip(keys, values)) for values in zip(*data.values())]  # column-oriented
        return [data]  # one single row
    raise DataError(f"{name} holds a single {type(data).__name__} value, not a list of rows.")


def _csv(source: Source) -> Iterator[Record]:
    """CSV/TSV with a header row. Quoted fields may hold commas and newlines; the row number is the line
    on which the record starts, as a spreadsheet shows it."""
    delimiter = "\t" if source.kind == "tsv" else ","
    with source.path.open("rb") as handle:
        encoding = "utf-16" if handle.read(2) in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
        handle.seek(0)
        # surrogateescape keeps foreign bytes as markers, so the bad row is reported instead of aborting.
        text = io.TextIOWrapper(handle, encoding=encoding, errors="surrogateescape", newline="")
        reader = csv.reader(text, delimiter=delimiter)
        header, start = None, 1
        try:
            for fields in reader:
                number, start = start, reader.line_num + 1
                source.done = handle.tell()
                if not fields or not any(f.strip() for f in fields):
                    continue
                bad = _foreign_bytes(fields)
                if header is None:
                    if bad:
                        raise DataError(f"{source.name}, line {number}: the header {bad}.")
                    header = [h.strip() for h in fields]
                    continue
                if bad:
                    yield Record(number, None, bad)
                elif len(fields) != len(header):
                    yield Record(number, None, f"has {len(fields)} columns but the header has {len(header)} "
                                               "(a comma inside a value needs quotes around the value)")
                else:
                    yield Record(number, dict(zip(header, fields)))
        except csv.Error as exc:
            raise DataError(f"{source.name}, line {reader.line_num}: cannot be read as {source.kind.upper()} "
                            f"({exc}).") from None
        if header is None:
            raise DataError(f"{source.name} holds no header row.")


def _foreign_bytes(fields: list[str]) -> str | None:
    for column, value in enumerate(fields, start=1):
        for position, char in enumerate(value):
            if "\udc80" <= char <= "\udcff":
                byte = ord(char) - 0xDC00
                return (f"holds byte 0x{byte:02X} in column {column}, which is not UTF-8 text; "
                        "save the file as UTF-8")
    return None


def _txt(source: Source) -> Iterator[Record]:
    """Plain text for continued pre-training: documents are separated by one or more blank lines; a
    document's number is the line it starts on."""
    with _text_lines(source.path, source) as lines:
        start, parts = 0, []
        for number, line, error in lines:
            if error:
                yield Record(number, None, error)
                continue
            if line.strip():
                if not parts:
                    start = number
                parts.append(line)
            elif parts:
                yield Record(start, {"text": "".join(parts).strip()})
                parts = []
        if parts:
            yield Record(start, {"text": "".join(parts).strip()})


def _parquet(source: Source) -> Iterator[Record]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(source.path)
    except Exception as exc:
        raise DataError(f"{source.name} cannot be read as Parquet ({exc}).") from None
    source.total = parquet.metadata.num_rows
    number = 0
    for batch in parquet.iter_batches(batch_size=2000):
        for row in batch.to_pylist():
            number += 1
            yield Record(number, row)
        source.done = number


def _hf(source: Source) -> Iterator[Record]:
    """A Hugging Face dataset: a folder saved with save_to_disk, a folder of data files, or a Hub id."""
    import datasets

    location = str(source.path)
    try:
        if source.path.is_dir() and (source.path / "state.json").exists():
            ds = datasets.load_from_disk(location)
        else:
            ds = datasets.load_dataset(location)
    except Exception as exc:
        where = (f"The dataset folder {location} cannot be loaded" if source.path.is_dir() else
                 f"{location} is neither a file on this computer nor a Hugging Face dataset that can be loaded")
        detail = str(exc).splitlines()[0] if str(exc) else ""
        raise DataError(f"{where} ({type(exc).__name__}: {detail}).") from None
    if isinstance(ds, datasets.DatasetDict):
        split = "train" if "train" in ds else next(iter(ds))
        ds = ds[split]
    source.total = len(ds)
    for number, row in enumerate(ds, start=1):
        source.done = number
        yield Record(number, row)
