"""Documents (.txt, .md, .docx, .pdf), one file or a folder of them, as plain-text training data.

This is "teach it this material" training: the model reads the text and learns its facts and wording, as in
its pre-training. Each document is cut into passages of whole paragraphs (a heading starts a new passage and
stays with the text under it); the text format's windowing then splits a passage longer than the cutoff.
Every passage keeps its file and page (or paragraph, or line), so the preview and every message can say
where it came from. Pages without text are reported, not dropped: a scanned page is a picture, and reading
pictures (OCR) is not something this app does.

Cleaning is done only where it is reliable: in PDFs, a line repeated at the top or bottom of most pages (a
running header, "Page 4 of 20") is removed, a word hyphenated at a line end is joined again (keeping the
hyphen when the document writes the word with one elsewhere), and a line that stops mid-sentence is joined
with the next when that one starts in lower case. Word files have their page headers and footers apart
from the text, so nothing needs removing there.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from studio.data.readers import DOCUMENTS, Record, Source
from studio.errors import DataError

SUFFIXES = DOCUMENTS + (".txt", ".text")
DATASET_FILES = {".parquet", ".arrow", ".jsonl", ".json", ".csv", ".tsv"}
OTHER_DOCUMENTS = {".doc", ".odt", ".rtf", ".pages", ".epub", ".html", ".htm"}  # documents read elsewhere
PASSAGE_CHARS = 3000  # about 750 tokens: a passage fits under the default 1,024-token cutoff
EXPLANATION = (
    "These documents teach the model the material itself: it reads every passage and learns its facts, names "
    "and wording, the way it learned language in the first place. It does not learn to answer questions or "
    "follow instructions from them; for that, train it on question/answer examples (a sheet or file with a "
    "question and an answer column). Documents suit a model that should know your handbook; examples suit "
    "one that should answer in your way.")
SCAN = "has no text: it may be a scan (a picture of a page); text inside pictures cannot be read"
PROTECTED = ("is protected by a password, so it cannot be read; open it, save a copy without the password and "
             "choose that copy")


class Unreadable(Exception):
    """A whole document cannot be read; the message is a sentence without the file's name."""


@dataclass
class Unit:
    text: str
    where: str  # "page 4", "paragraph 12", "line 30"
    heading: bool = False


def is_document_folder(folder: Path) -> bool:
    """A folder of documents, as opposed to a saved or downloaded Hugging Face dataset."""
    if (folder / "state.json").exists() or (folder / "dataset_info.json").exists():
        return False
    suffixes = {p.suffix.lower() for p in _files(folder)}
    return bool(suffixes & set(SUFFIXES)) and not suffixes & DATASET_FILES


def document_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """(the documents in a folder and its subfolders, the other files), in name order."""
    files = _files(folder)
    return ([p for p in files if p.suffix.lower() in SUFFIXES],
            [p for p in files if p.suffix.lower() not in SUFFIXES])


def _files(folder: Path) -> list[Path]:
    """Files a person put there: no hidden files, no Office lock files (~$report.docx)."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("~$")
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


class DocumentSource(Source):
    """A document or a folder of them; records are passages {"text": ...} numbered 1, 2, 3 in reading
    order, and problems (an unreadable file, a page without text) are records with an error."""

    def __init__(self, path: Path):
        super().__init__(path, "documents", "passage", 0)
        self.folder = path.is_dir()
        self.files, self.others = document_files(path) if self.folder else ([path], [])
        if self.folder and not self.files:
            raise DataError(f"The folder {path.name} holds no documents (.txt, .md, .docx, .pdf).")
        self.total = sum(p.stat().st_size for p in self.files)
        self.locations: dict[int, str] = {}
        self.pages = 0

    def label(self, file: Path) -> str:
        return str(file.relative_to(self.path)) if self.folder else file.name

    def where(self, number: int) -> str:
        return self.locations.get(number, f"{self.name}, passage {number}")

    def origin(self, number: int) -> str | None:
        return self.locations.get(number)

    def notes(self, mapping: dict[str, str]) -> list[str]:
        kinds = Counter(p.suffix.lower().lstrip(".") for p in self.files)
        out = [f"{len(self.files)} document{'s' * (len(self.files) != 1)} ("
               + ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())) + ")",
               f"cut into passages of whole paragraphs, up to {PASSAGE_CHARS:,} characters"]
        if self.others:
            kinds = sorted({p.suffix.lower() or "no extension" for p in self.others})
            hint = "; save a document as .docx or PDF to include it" if set(kinds) & OTHER_DOCUMENTS else ""
            out.append(f"{len(self.others)} other file{'s' * (len(self.others) != 1)} left out "
                       f"({', '.join(kinds)}){hint}")
        return out

    def records(self) -> Iterator[Record]:
        number, done = 0, 0
        for file in self.files:
            label, size = self.label(file), file.stat().st_size
            try:
                for item in passages(read_units(file, self, done, size)):
                    number += 1
                    if isinstance(item, Unit):
                        self.locations[number] = f"{label}, {item.where}"
                        yield Record(number, {"text": item.text})
                    else:
                        where, reason = item
                        self.locations[number] = f"{label}, {where}"
                        yield Record(number, None, reason)
            except Unreadable as exc:
                if not self.folder:
                    raise DataError(f"{label} {exc}.") from None
                number += 1
                self.locations[number] = label
                yield Record(number, None, str(exc))
            done += size
            self.done = done


def passages(units: Iterator[Unit | tuple[str, str]]) -> Iterator[Unit | tuple[str, str]]:
    """Group a document's units into passages of whole paragraphs up to PASSAGE_CHARS; a heading starts a
    new passage. Problems ((where, reason) pairs) pass straight through."""
    texts: list[str] = []
    first = last = ""
    only_headings = True
    for unit in units:
        if not isinstance(unit, Unit):
            yield unit
            continue
        size = sum(len(t) + 2 for t in texts)
        if texts and (unit.heading and not only_headings or size + len(unit.text) > PASSAGE_CHARS and not only_headings):
            yield Unit("\n\n".join(texts), _span(first, last))
            texts = []
        if not texts:
            first, only_headings = unit.where, True
        texts.append(unit.text)
        last = unit.where
        only_headings = only_headings and unit.heading
    if texts:
        yield Unit("\n\n".join(texts), _span(first, last))


def _span(first: str, last: str) -> str:
    """'page 3' and 'page 5' -> 'pages 3-5'."""
    if first == last:
        return first
    word, _, start = first.partition(" ")
    other, _, end = last.partition(" ")
    return f"{word}s {start}-{end}" if word == other else f"{first} to {last}"


def read_units(path: Path, source: Source, done: int, size: int) -> Iterator[Unit | tuple[str, str]]:
    """The paragraphs (or pages) of one document, and (where, reason) for parts without text."""
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        yield from _pdf(path, source, done, size)
    elif suffix == ".docx":
        yield from _docx(path, source)
    else:
        yield from _plain(path, markdown=suffix in (".md", ".markdown"))


def _plain(path: Path, markdown: bool) -> Iterator[Unit]:
    """Blocks of lines separated by blank lines, numbered by the line they start on; in Markdown a block
    that starts with '#' is a heading."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-16") if raw.startswith((b"\xff\xfe", b"\xfe\xff")) else raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise Unreadable(f"is not UTF-8 text (line {line}); save it as UTF-8") from None
    block, start = [], 0
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            if not block:
                start = number
            block.append(line.rstrip())
        elif block:
            yield Unit("\n".join(block), f"line {start}", markdown and block[0].lstrip().startswith("#"))
            block = []
    if block:
        yield Unit("\n".join(block), f"line {start}", markdown and block[0].lstrip().startswith("#"))
    if not text.strip():
        raise Unreadable("holds no text")


def _docx(path: Path, source: Source) -> Iterator[Unit]:
    """Paragraphs and tables in document order. Locations are pages when Word (or LibreOffice) recorded
    where its pages broke when it last saved the file, else paragraph numbers."""
    from docx.table import Table

    document = _open_docx(path)
    body = document.element.body
    paged = bool(body.xpath(".//w:lastRenderedPageBreak"))
    page, paragraph, any_text = 1, 0, False
    for block in document.iter_inner_content():
        source.tick()
        if isinstance(block, Table):
            text = _table_text(block)
            heading = False
        else:
            breaks = block.rendered_page_breaks if paged else []
            if breaks and not (breaks[0].preceding_paragraph_fragment.text.strip()):
                page, breaks = page + 1, breaks[1:]  # the paragraph starts on the new page
            text = block.text.strip()
            style = block.style.name if block.style is not None else ""
            heading = style.startswith(("Heading", "Title"))
        if text:
            paragraph += 1
            any_text = True
            yield Unit(text, f"page {page}" if paged else f"paragraph {paragraph}", heading)
        if not isinstance(block, Table):
            page += len(breaks)
    if not any_text:
        raise Unreadable("holds no text")


def _open_docx(path: Path):
    import docx

    with path.open("rb") as handle:
        head = handle.read(1 << 20)
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        if "EncryptedPackage".encode("utf-16-le") in head:
            raise Unreadable(PROTECTED)
        raise Unreadable("is an old Word document (.doc) named .docx; open it in Word or LibreOffice and save it "
                         "as .docx")
    try:
        return docx.Document(str(path))
    except Exception as exc:  # zip, XML and package errors alike mean the file cannot be opened
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise Unreadable(f"cannot be read as a Word document: it may be damaged ({detail}); open it in Word or "
                         "LibreOffice and save it again") from None


def _table_text(table) -> str:
    """A table as one line per row, cells joined by ' | ' (a merged cell once, not once per column)."""
    lines = []
    for row in table.rows:
        cells: list[str] = []
        for cell in row.cells:
            text = " ".join(cell.text.split())
            if text and (not cells or cells[-1] != text):
                cells.append(text)
        if cells:
            lines.append(" | ".join(cells))
    return "\n".join(lines)


def _pdf(path: Path, source: Source, done: int, size: int) -> Iterator[Unit | tuple[str, str]]:
    """One unit per page with text; (page, reason) for a page without any."""
    reader = _open_pdf(path)
    count = len(reader.pages)
    pages, pictures = [], []
    for index, page in enumerate(reader.pages):
        try:
            pages.append(page.extract_text() or "")
        except Exception as exc:  # a damaged content stream spoils that page only
            pages.append("")
            pictures.append(f"could not be read ({type(exc).__name__})")
        else:
            pictures.append(SCAN if _has_images(page) else "is blank")
        source.done = done + size * (index + 1) // max(1, count)
        source.tick()
    if not any(text.strip() for text in pages):
        raise Unreadable(f"has no text on any of its {count} pages: it may be scanned (pictures of pages), and "
                         "text inside pictures cannot be read; use a PDF with text, or the document it was made from")
    for number, text in enumerate(clean_pages(pages), start=1):
        if text:
            yield Unit(text, f"page {number}")
        else:
            yield f"page {number}", pictures[number - 1]


def _open_pdf(path: Path):
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, PdfReadError

    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted and not reader.decrypt(""):  # an owner-only password still opens
            raise Unreadable(PROTECTED)
        reader.pages[0]
    except Unreadable:
        raise
    except DependencyError:
        raise Unreadable("is encrypted in a way that needs the 'cryptography' package; install it "
                         "(pip install cryptography) or save a copy without protection") from None
    except (PdfReadError, OSError, ValueError, KeyError, IndexError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise Unreadable(f"cannot be read as a PDF: it may be damaged or cut off ({detail}); open it in a PDF "
                         "reader and save or print it to a new PDF") from None
    return reader


def _has_images(page) -> bool:
    try:
        return len(page.images) > 0
    except Exception:  # an unreadable image list: call it a picture, the likelier cause of no text
        return True


def clean_pages(pages: list[str]) -> list[str]:
    """PDF page texts without running headers and footers, with hyphenated words and broken lines joined."""
    lines = [[line.strip() for line in text.splitlines() if line.strip()] for text in pages]
    for _ in range(2):  # a header or footer of two lines
        for end in (0, -1):
            _drop_repeated(lines, end)
    hyphenated = {w.lower() for page in lines for line in page for w in re.findall(r"\w+-\w+", line)}
    return ["\n".join(_join_lines(page, hyphenated)) for page in lines]


def _drop_repeated(pages: list[list[str]], end: int) -> None:
    """Remove the first (end=0) or last (end=-1) line of each page when, with its digits ignored, it is the
    same on at least half of three or more pages: a running header, a footer, a page number."""
    # Counted on pages with more than one line: a page's only line is its text, unless the other pages show
    # that line to be their header (then that page is empty but for the header, and is reported as blank).
    fuller = [page for page in pages if len(page) > 1]
    if len(fuller) < 3:
        return

    def shape(line):
        return re.sub(r"\d+", "#", line.lower())
    counts = Counter(shape(page[end]) for page in fuller)
    repeated = {line for line, n in counts.items() if n >= max(2, len(fuller) / 2)}
    for page in pages:
        if page and shape(page[end]) in repeated:
            page.pop(end)


def _join_lines(lines: list[str], hyphenated: set[str]) -> list[str]:
    out: list[str] = []
    for line in lines:
        if out:
            previous = out[-1]
            broken = re.search(r"([A-Za-z]*[a-z])-$", previous)
            if broken and line[:1].islower():
                word = f"{broken.group(1)}-{re.match(r'[A-Za-z]*', line).group(0)}".lower()
                out[-1] = previous[:-1] + ("-" if word in hyphenated else "") + line
                continue
            if previous[-1:].isalpha() or previous[-1:] == ",":
                if line[:1].islower():
                    out[-1] = f"{previous} {line}"  # the sentence goes on: the break was only the page width
                    continue
        out.append(line)
    return out

