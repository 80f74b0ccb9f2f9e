"""Spreadsheets (.xlsx, .xlsm, .ods, .xls) as rows of named columns, read the way a person sees the sheet.

Real sheets are untidy, so reading one means: take the chosen sheet (the first non-empty one unless told),
find the header row below title rows and blank rows, keep the named columns and say which were ignored,
number rows as the program shows them (sheet row 7), and read every cell as the text it shows: formulas as
their saved results, dates and numbers as formatted, a value merged down over several rows in each of them.

Libraries, and why:
- .xlsx: openpyxl in read-only mode streams a sheet row by row (flat memory, progress, cancel) and gives each
  cell's value and number format; studio.data.cellformat draws the shown text. pandas.read_excel would give
  the same raw values without the formats (4.0, 0.25, a timestamp), so it adds nothing here.
- .ods: the file stores each cell's shown text itself, so its content.xml is streamed with the standard
  library's XML parser. odfpy (what pandas uses) builds the whole document in memory: a 100,000-row sheet
  took 1.3 GB and 55 s of CPU, against 20 MB and 4.5 s streamed.
- .xls: xlrd, the reader pandas uses for the old Excel format, with its formatting information.
"""
from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator
from xml.etree.ElementTree import ParseError, iterparse

from studio.data.cellformat import shown
from studio.data.formats import Unsaved, detect
from studio.data.readers import Record, Source
from studio.errors import DataError

SUFFIXES = {".xlsx": "xlsx", ".xlsm": "xlsx", ".ods": "ods", ".xls": "xls"}
HEADER_SEARCH = 50  # non-blank rows looked at to find the header
OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # an old Office file, or a password-protected new one
UNSAVED = ("is a formula whose result was never saved (the file was written by a program that does not "
           "calculate formulas); open the file in Excel or LibreOffice, save it, and choose it again")
PROTECTED = ("is protected by a password, so it cannot be read; open it in Excel or LibreOffice, remove the "
             "password (File > Info > Protect Workbook, or Save As without a password) and choose the copy")


def letter(column: int) -> str:
    """Column 0 -> 'A', 27 -> 'AB'."""
    name = ""
    column += 1
    while column:
        column, rest = divmod(column - 1, 26)
        name = chr(65 + rest) + name
    return name


class SheetSource(Source):
    """One sheet of a workbook; records are its data rows as {column name: shown text}."""

    def __init__(self, path: Path, sheet: str = ""):
        super().__init__(path, "sheet", "row", 0)
        self.book = _open(path)
        names = self.book.names()
        self.sheets = [name for name in names if self.book.has_data(name)]
        if sheet and sheet not in names:
            raise DataError(f"{path.name} has no sheet named '{sheet}'; its sheets are "
                            f"{', '.join(repr(n) for n in names)}. Choose one of them.")
        if not self.sheets:
            raise DataError(f"{path.name}: every sheet is empty, so there is nothing to train on.")
        self.sheet, self.chosen = sheet or self.sheets[0], bool(sheet)
        self.name = f"{path.name}, sheet '{self.sheet}'"
        self.layout: Layout | None = None

    def origin(self, number: int) -> str:
        return f"{self.sheet}, row {number}"

    def notes(self, mapping: dict[str, str]) -> list[str]:
        if self.layout is None:
            return []
        return self.layout.notes(self.sheet, set(mapping.values()), len(self.sheets), self.chosen)

    def records(self) -> Iterator[Record]:
        rows = self.book.rows(self.sheet, self)
        head = []
        for number, cells in rows:
            head.append((number, cells))
            if len(head) >= HEADER_SEARCH:
                break
        self.layout = find_header(head, self.name)
        for number, cells in _chain(head, rows):
            if number <= self.layout.row:
                continue
            self.layout.see(cells)
            values = self.layout.values(cells)
            if any(v or isinstance(v, Unsaved) for v in values.values()):  # a row with text only in unnamed columns is left out like a blank one
                yield Record(number, values)


def _chain(head, rows):
    yield from head
    yield from rows


@dataclass
class Layout:
    """Where the header is and which columns are kept, with what was left out (for the notes)."""
    row: int  # the header's sheet row
    columns: dict[int, str]  # column index -> name
    unnamed: set[int] = field(default_factory=set)  # columns with values but no name in the header row
    filled: set[int] = field(default_factory=set)  # named columns that hold a value in some row
    seen: int = 0

    def see(self, cells: list[str]) -> None:
        if self.seen < 1000:  # the notes speak of the first rows; counting all would cost on 100,000 rows
            self.seen += 1
            for i, cell in enumerate(cells):
                if cell:
                    (self.filled if i in self.columns else self.unnamed).add(i)

    def values(self, cells: list[str]) -> dict[str, str]:
        return {name: cells[i] if i < len(cells) else "" for i, name in self.columns.items()}

    def notes(self, sheet: str, used: set[str], sheets: int, chosen: bool) -> list[str]:
        which = f"chosen of {sheets} with data" if chosen else f"the first with data of {sheets}"
        out = [f"sheet '{sheet}' ({which})" if sheets > 1 else f"sheet '{sheet}'", f"header in row {self.row}"]
        unused = [f"'{name}' ({letter(i)})" for i, name in self.columns.items() if name not in used]
        if unused:
            out.append("columns not used by this format: " + ", ".join(unused))
        empty = [f"'{name}' ({letter(i)})" for i, name in self.columns.items()
                 if name in used and i not in self.filled]
        if empty:
            out.append("empty columns: " + ", ".join(empty))
        if self.unnamed:
            out.append("ignored, no name in the header row: column " +
                       ", ".join(letter(i) for i in sorted(self.unnamed)))
        return out


def find_header(head: list[tuple[int, list[str]]], name: str) -> Layout:
    """The header row among the first non-blank rows: the first whose names a dataset format knows
    (question/answer, prompt/completion, instruction/output, ...), else the first with two or more named
    cells that are not numbers (a title row has one cell)."""
    if not head:
        raise DataError(f"{name} holds no rows: there is nothing to train on.")
    known = next((h for h in head if detect([{c: "" for c in h[1] if c}])), None)
    header = known or next((h for h in head if sum(1 for c in h[1] if c and not _numeric(c)) >= 2), None)
    if header is None:
        raise DataError(f"{name}: no header row in the first {len(head)} rows with data. Put the column names "
                        "(for example question and answer) in one row above the examples.")
    number, cells = header
    columns: dict[int, str] = {}
    for i, cell in enumerate(cells):
        title = " ".join(cell.split())
        if title:
            columns[i] = title if title not in columns.values() else f"{title} ({letter(i)})"
    return Layout(number, columns)


def _numeric(text: str) -> bool:
    return bool(re.fullmatch(r"[-+]?[\d.,\s%$€£]+", text))


def _open(path: Path):
    kind = SUFFIXES[path.suffix.lower()]
    with path.open("rb") as handle:
        head = handle.read(8)
    if kind in ("xlsx", "ods") and head.startswith(OLE):
        if _is_encrypted_package(path):
            raise DataError(f"{path.name} {PROTECTED}.")
        raise DataError(f"{path.name} is an old-format Office file, not a {path.suffix} file; rename it to .xls "
                        "or save it again as .xlsx.")
    if kind == "xls" and head.startswith(b"PK"):
        raise DataError(f"{path.name} is a new-format workbook; rename it to .xlsx.")
    return {"xlsx": _Xlsx, "ods": _Ods, "xls": _Xls}[kind](path)


def _is_encrypted_package(path: Path) -> bool:
    """Office keeps a password-protected .xlsx/.docx in an OLE file with an 'EncryptedPackage' stream."""
    with path.open("rb") as handle:
        return "EncryptedPackage".encode("utf-16-le") in handle.read(1 << 20)


def _unreadable(path: Path, exc: Exception) -> DataError:
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return DataError(f"{path.name} cannot be read as a spreadsheet: it may be damaged or not really a "
                     f"{path.suffix} file ({detail}). Open it in Excel or LibreOffice and save it again.")


class _Xlsx:
    def __init__(self, path: Path):
        import openpyxl

        self.path = path
        self.origins: set[tuple[int, int]] = set()  # cells whose value is merged down over later rows
        try:
            self.workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:  # zipfile, XML and openpyxl errors alike mean the file cannot be opened
            raise _unreadable(path, exc) from None

    def names(self) -> list[str]:
        return [ws.title for ws in self.workbook.worksheets]

    def has_data(self, name: str) -> bool:
        return next(self.rows(name, None, quick=True), None) is not None

    def rows(self, name: str, source: Source | None, quick: bool = False) -> Iterator[tuple[int, list[str]]]:
        """(sheet row, shown text of each cell) for every non-blank row."""
        sheet = self.workbook[name]
        merged, unsaved = ({}, set()) if quick else self._scan(sheet, source)
        if source is not None:
            source.total = sheet.max_row or 0
        kept: dict[tuple[int, int], str] = {}  # values of cells merged down over later rows
        try:
            for number, row in enumerate(sheet.iter_rows(), start=1):
                if source is not None:
                    source.done = number
                cells = []
                for column, cell in enumerate(row):
                    key = (number, column)
                    if key in merged:
                        cells.append(kept.get(merged[key], ""))
                        continue
                    text = shown(cell.value, getattr(cell, "number_format", None)).strip()
                    if not text and key in unsaved:
                        text = Unsaved(UNSAVED)
                    cells.append(text)
                    if key in self.origins:
                        kept[key] = text
                while cells and cells[-1] == "" and not isinstance(cells[-1], Unsaved):
                    cells.pop()
                if cells:
                    yield number, cells
        except (zipfile.BadZipFile, ParseError, KeyError, ValueError) as exc:
            raise _unreadable(self.path, exc) from None

    def _scan(self, sheet, source: Source | None) -> tuple[dict, set]:
        """Merged ranges and formula cells with no saved result, from the sheet's XML: read-only openpyxl
        does not report either, and the merges come after the rows in the file."""
        merged, unsaved = {}, set()
        self.origins = set()
        xml = sheet._get_source()  # the sheet's XML part (openpyxl keeps the opened zip)
        formula = result = False
        try:
            for event, element in iterparse(xml, events=("start", "end")):
                tag = element.tag.rsplit("}", 1)[-1]
                if event == "start":
                    if tag == "c":
                        formula = result = False
                    continue
                if tag == "f":
                    formula = True
                elif tag == "v":
                    result = bool(element.text)
                elif tag == "c":
                    if formula and not result:
                        unsaved.add(_cell_key(element.get("r", "")))
                elif tag == "row":
                    element.clear()
                    if source is not None:
                        source.tick()  # a cancel is honoured during this first pass too
                elif tag == "mergeCell":
                    self._merge(element.get("ref", ""), merged)
        except ParseError as exc:
            raise _unreadable(self.path, exc) from None
        finally:
            xml.close()
        return merged, unsaved

    def _merge(self, ref: str, merged: dict) -> None:
        """A value merged down over rows shows in each of them; merged across columns it shows once."""
        if ":" not in ref:
            return
        (top, left), (bottom, _) = (_cell_key(part) for part in ref.split(":"))
        if bottom > top:
            self.origins.add((top, left))
            for number in range(top + 1, bottom + 1):
                merged[(number, left)] = (top, left)


def _cell_key(ref: str) -> tuple[int, int]:
    """'C7' -> (7, 2): the sheet row and the 0-based column."""
    match = re.fullmatch(r"\$?([A-Za-z]+)\$?(\d+)", ref)
    if not match:
        return (0, 0)
    column = 0
    for char in match.group(1).upper():
        column = column * 26 + ord(char) - 64
    return int(match.group(2)), column - 1


TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
MAX_REPEAT = 1024  # a run of repeated cells longer than this is the sheet's empty remainder


class _Counting:
    """A file wrapper that counts bytes read, for progress through content.xml."""

    def __init__(self, handle, source: Source | None):
        self.handle, self.source = handle, source

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        if self.source is not None:
            self.source.done += len(data)
        return data


class _Ods:
    def __init__(self, path: Path):
        self.path = path
        try:
            self.zip = zipfile.ZipFile(path)
            manifest = self.zip.read("META-INF/manifest.xml") if "META-INF/manifest.xml" in self.zip.namelist() else b""
            self.size = self.zip.getinfo("content.xml").file_size
        except (zipfile.BadZipFile, KeyError, OSError) as exc:
            raise _unreadable(path, exc) from None
        if b"encryption-data" in manifest:
            raise DataError(f"{path.name} {PROTECTED}.")
        self._names: list[str] | None = None

    def names(self) -> list[str]:
        if self._names is None:
            self._names, self._filled = [], set()
            for name, _, _ in self._rows_of_all(None, first_only=True):
                if name not in self._names:
                    self._names.append(name)
        return self._names

    def has_data(self, name: str) -> bool:
        self.names()
        return name in self._filled

    def rows(self, name: str, source: Source | None) -> Iterator[tuple[int, list[str]]]:
        if source is not None:
            source.total = self.size
        for sheet, number, cells in self._rows_of_all(source):
            if sheet == name and cells:
                yield number, cells

    def _rows_of_all(self, source, first_only: bool = False):
        """(sheet, sheet row, shown texts) for every row; with first_only, one entry per sheet (marking
        the sheets that hold data) without building the cells of other rows."""
        sheet, number, below = "", 0, {}
        try:
            stream = _Counting(self.zip.open("content.xml"), source)
            for event, element in iterparse(stream, events=("start", "end")):
                tag = element.tag
                if event == "start":
                    if tag == f"{{{TABLE}}}table":
                        sheet, number, below = element.get(f"{{{TABLE}}}name", ""), 0, {}
                        if first_only:
                            yield sheet, 0, []
                    continue
                if tag != f"{{{TABLE}}}table-row":
                    continue
                repeat = int(element.get(f"{{{TABLE}}}number-rows-repeated", "1"))
                if first_only:
                    if sheet not in self._filled and any(_cell_text(c) for c in element):
                        self._filled.add(sheet)
                    element.clear()
                    continue
                cells = self._cells(element, number + 1, below)
                element.clear()
                for _ in range(min(repeat, MAX_REPEAT) if cells else 1):
                    number += 1
                    yield sheet, number, list(cells)
                if not cells:
                    number += repeat - 1
        except (ParseError, zipfile.BadZipFile, OSError) as exc:
            raise _unreadable(self.path, exc) from None

    @staticmethod
    def _cells(row, number: int, below: dict) -> list[str]:
        """Shown texts of one row; `below` carries values merged down into later rows."""
        cells: list[str] = []
        blank = 0  # empty cells not yet placed: LibreOffice ends each row with thousands of them
        for cell in row:
            repeat = min(int(cell.get(f"{{{TABLE}}}number-columns-repeated", "1")), MAX_REPEAT)
            covered = cell.tag == f"{{{TABLE}}}covered-table-cell"
            text = "" if covered else _cell_text(cell)
            if not text and not (covered and below):
                blank += repeat
                continue
            for _ in range(repeat):
                cells.extend([""] * blank)
                blank, column = 0, len(cells)
                if covered:
                    value, last = below.get(column, ("", 0))
                    cells.append(value if number <= last else "")
                    continue
                cells.append(text)
                span = int(cell.get(f"{{{TABLE}}}number-rows-spanned", "1"))
                if span > 1:
                    below[column] = (text, number + span - 1)
        while cells and not cells[-1]:
            cells.pop()
        return cells


def _cell_text(cell) -> str:
    """The text an .ods cell shows: its paragraphs; else its value, for files written without the text."""
    paragraphs = [_paragraph(p) for p in cell if p.tag == f"{{{TEXT}}}p"]
    if paragraphs:
        return "\n".join(paragraphs).strip()
    for attribute in ("value", "date-value", "time-value", "boolean-value", "string-value"):
        value = cell.get(f"{{{OFFICE}}}{attribute}")
        if value is not None:
            return value.strip()
    return ""


def _paragraph(element) -> str:
    """Text of a text:p with its spans, links, runs of spaces (text:s), tabs and line breaks."""
    parts = [element.text or ""]
    for child in element:
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "s":
            parts.append(" " * int(child.get(f"{{{TEXT}}}c", "1")))
        elif tag == "tab":
            parts.append("\t")
        elif tag == "line-break":
            parts.append("\n")
        else:
            parts.append(_paragraph(child))
        parts.append(child.tail or "")
    return "".join(parts)


class _Xls:
    def __init__(self, path: Path):
        import xlrd

        self.path = path
        try:
            self.workbook = xlrd.open_workbook(str(path), formatting_info=True, on_demand=True)
        except xlrd.XLRDError as exc:
            if "encrypted" in str(exc).lower():
                raise DataError(f"{path.name} {PROTECTED}.") from None
            raise _unreadable(path, exc) from None
        except Exception as exc:
            raise _unreadable(path, exc) from None

    def names(self) -> list[str]:
        return self.workbook.sheet_names()

    def has_data(self, name: str) -> bool:
        sheet = self.workbook.sheet_by_name(name)
        return any(str(v).strip() for r in range(sheet.nrows) for v in sheet.row_values(r))

    def rows(self, name: str, source: Source | None) -> Iterator[tuple[int, list[str]]]:
        import xlrd

        book, sheet = self.workbook, self.workbook.sheet_by_name(name)
        below = {}
        for top, bottom, left, _ in sheet.merged_cells:  # 0-based, bottom exclusive
            for row in range(top + 1, bottom):
                below[(row, left)] = (top, left)
        if source is not None:
            source.total = sheet.nrows
        for r in range(sheet.nrows):
            if source is not None:
                source.done = r + 1
            cells = []
            for c in range(sheet.ncols):
                cell = sheet.cell(*below.get((r, c), (r, c)))
                code = book.format_map[book.xf_list[cell.xf_index].format_key].format_str
                value = cell.value
                if cell.ctype == xlrd.XL_CELL_DATE:
                    value = xlrd.xldate.xldate_as_datetime(value, book.datemode)
                    value = value.time() if cell.value < 1 else value
                elif cell.ctype == xlrd.XL_CELL_BOOLEAN:
                    value = bool(value)
                elif cell.ctype in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK, xlrd.XL_CELL_ERROR):
                    value = None
                cells.append(shown(value, code).strip())
            while cells and not cells[-1]:
                cells.pop()
            if cells:
                yield r + 1, cells
