"""Documents as training material: .txt, .md, .docx and .pdf files, alone or in a folder, cut into passages
that keep their file and page; running headers, hyphenation and empty or scanned pages handled."""
from pathlib import Path

import pytest

from studio.data import inspect_file, scan
from studio.data.cache import content_hash
from studio.data.documents import EXPLANATION, PASSAGE_CHARS
from studio.errors import Cancelled, DataError
from test_gui_pages import wait_for_data, window  # noqa: F401 - the real window, as the page tests open it

BODY = ("The keeper trims the wick every evening before sunset and checks the oil reservoir, because a clean "
        "lens matters more than a bright flame: soot scatters the beam and the infor-")


def make_pdf(path: Path, pages: list, header: str = "Lighthouse Manual, draft") -> Path:
    """A PDF whose pages hold the given lines; None makes a blank page, 'picture' a page with only an image.
    Every page with text gets a running header and a 'Page N of M' footer, as printed manuals have."""
    from fpdf import FPDF
    from PIL import Image

    pdf = FPDF()
    pdf.set_auto_page_break(False)
    for number, lines in enumerate(pages, start=1):
        pdf.add_page()
        if lines == "picture":
            image = path.with_suffix(".png")
            Image.new("RGB", (200, 280), "white").save(image)
            pdf.image(str(image), x=10, y=10, w=180)
            continue
        if lines is None:
            continue
        pdf.set_font("Helvetica", size=9)
        pdf.text(80, 10, header)
        pdf.set_font("Helvetica", size=11)
        for i, line in enumerate(lines):
            pdf.text(15, 30 + 7 * i, line)
        pdf.set_font("Helvetica", size=9)
        pdf.text(95, 285, f"Page {number} of {len(pages)}")
    pdf.output(str(path))
    return path


MANUAL = [
    ["Chapter 1: The lamp", "The keeper trims the wick every evening before sunset and", "checks the oil reservoir. A clean lens matters more than the",
     "flame, because soot scatters the beam and the infor-", "mation reaching ships becomes unreliable in fog."],
    ["Chapter 2: Stores", "Keep two barrels of oil and a well-known brand of wick; a well-", "known brand lasts the winter."],
    None,
    "picture",
    ["Chapter 3: Log", "Write the weather in the log at every watch."],
]


def make_docx(path: Path) -> Path:
    import docx

    document = docx.Document()
    document.add_heading("Opening hours", level=1)
    document.add_paragraph("The museum opens at nine and closes at five, every day but Monday.")
    document.add_paragraph("Groups of more than ten people book a guide in advance.")
    document.add_heading("Tickets", level=1)
    document.add_paragraph("Adults pay twelve euros; children under twelve enter free.")
    table = document.add_table(rows=2, cols=2)
    for (r, c), text in {(0, 0): "Ticket", (0, 1): "Price", (1, 0): "Adult", (1, 1): "12 EUR"}.items():
        table.cell(r, c).text = text
    document.sections[0].header.paragraphs[0].text = "Museum guide, internal"  # not body text: left out
    document.save(path)
    return path


def texts(path, **kw):
    _, _, pairs = scan(path, **kw)
    pairs = list(pairs)
    return [row for row, problem in pairs if problem is None], [p for _, p in pairs if p]


def test_pdf_pages_cleaned_and_empty_pages_reported(tmp_path):
    rows, problems = texts(make_pdf(tmp_path / "manual.pdf", MANUAL + [[]]))  # page 6: header and footer only
    text = "\n".join(r.text for r in rows)
    assert "Lighthouse Manual" not in text and "Page 1 of 6" not in text  # running header and footer gone
    assert "the information reaching ships" in text  # hyphen at the line end joined, line break too
    assert "a well-known brand lasts" in text  # the document writes well-known with its hyphen: kept
    assert "before sunset and checks the oil reservoir." in text  # a line that stops mid-sentence joined
    assert "Chapter 1: The lamp\nThe keeper" in text  # a heading line stays a line of its own
    assert [p.message for p in problems] == ["manual.pdf, page 3 is blank.",
                                             "manual.pdf, page 4 has no text: it may be a scan (a picture of a page); "
                                             "text inside pictures cannot be read.",
                                             "manual.pdf, page 6 is blank."]
    assert rows[0].origin.startswith("manual.pdf, page") and rows[-1].origin.endswith("5")


def test_docx_headings_start_passages_and_keep_their_text(tmp_path):
    report = inspect_file(make_docx(tmp_path / "guide.docx"))
    assert (report.kind, report.format, report.rows_word, report.usable_rows) == ("documents", "text", "passages", 2)
    first, second = report.preview
    assert first.text == ("Opening hours\n\nThe museum opens at nine and closes at five, every day but Monday.\n\n"
                          "Groups of more than ten people book a guide in advance.")
    assert second.text.startswith("Tickets\n\n") and second.text.endswith("Ticket | Price\nAdult | 12 EUR")
    assert (first.origin, second.origin) == ("guide.docx, paragraphs 1-3", "guide.docx, paragraphs 4-6")
    assert "Museum guide, internal" not in first.text + second.text
    assert report.evidence[0] == "documents, for teaching the model their material"


def test_folder_of_documents_with_sources_and_left_out_files(tmp_path):
    folder = tmp_path / "handbook"
    (folder / "chapters").mkdir(parents=True)
    make_pdf(folder / "chapters" / "manual.pdf", MANUAL)
    make_docx(folder / "guide.docx")
    (folder / "notes.md").write_text("# Notes\n\nThe lamp is lit at dusk.\n\n## Oil\n\nKeep two barrels.\n")
    (folder / "plain.txt").write_text("First block\nof two lines.\n\nSecond block.\n")
    (folder / "old.doc").write_bytes(b"\xd0\xcf\x11\xe0 old word")
    (folder / "~$guide.docx").write_bytes(b"lock")  # Word's lock file beside an open document
    report = inspect_file(folder)
    origins = [r.origin for r in report.preview]
    assert origins[0] == "chapters/manual.pdf, pages 1-5"  # one passage: the three pages with text are short
    assert "guide.docx, paragraphs 1-3" in origins and "notes.md, lines 1-3" in origins
    assert "notes.md, lines 5-7" in origins and "plain.txt, lines 1-4" in origins
    assert report.rows == report.usable_rows + 2 and report.problem_count == 2
    notes = "; ".join(report.evidence)
    assert "4 documents (1 docx, 1 md, 1 pdf, 1 txt)" in notes
    assert "2 other files left out (.doc, .png); save a document as .docx or PDF to include it" in notes
    assert report.summary().startswith("handbook: text format, ")


def test_cache_key_follows_the_documents_only(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("# A\n\nAlpha.\n")
    before = content_hash(folder)
    (folder / "~$a.docx").write_bytes(b"lock")
    (folder / ".DS_Store").write_bytes(b"x")
    assert content_hash(folder) == before
    (folder / "a.md").write_text("# A\n\nAlpha, changed.\n")
    changed = content_hash(folder)
    assert changed != before
    (folder / "b.txt").write_text("Beta.\n")
    assert content_hash(folder) not in (before, changed)


def test_long_text_is_cut_between_paragraphs(tmp_path):
    paragraph = "A sentence about the harbour and its tides. " * 20  # ~900 characters
    (tmp_path / "long.md").write_text("\n\n".join([paragraph.strip()] * 10))
    rows, _ = texts(tmp_path / "long.md")
    assert len(rows) == 4 and all(len(r.text) <= PASSAGE_CHARS for r in rows)
    assert sum(r.text.count("harbour") for r in rows) == 200  # nothing lost


def test_protected_corrupt_and_scanned_documents(tmp_path):
    from pypdf import PdfReader, PdfWriter

    manual = make_pdf(tmp_path / "manual.pdf", MANUAL)
    writer = PdfWriter(clone_from=PdfReader(manual))
    writer.encrypt(user_password="secret", owner_password="owner")
    writer.write(tmp_path / "locked.pdf")
    with pytest.raises(DataError, match="locked.pdf is protected by a password"):
        inspect_file(tmp_path / "locked.pdf")
    writer = PdfWriter(clone_from=PdfReader(manual))
    writer.encrypt(user_password="", owner_password="owner")  # may not be edited, but opens without one
    writer.write(tmp_path / "no_copy.pdf")
    assert inspect_file(tmp_path / "no_copy.pdf").usable_rows == 1
    (tmp_path / "cut.pdf").write_bytes(manual.read_bytes()[:300])
    with pytest.raises(DataError, match="cut.pdf cannot be read as a PDF: it may be damaged or cut off"):
        inspect_file(tmp_path / "cut.pdf")
    make_pdf(tmp_path / "scan.pdf", ["picture", "picture"])
    with pytest.raises(DataError, match="scan.pdf has no text on any of its 2 pages: it may be scanned"):
        inspect_file(tmp_path / "scan.pdf")
    (tmp_path / "broken.docx").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(DataError, match="broken.docx cannot be read as a Word document"):
        inspect_file(tmp_path / "broken.docx")
    # In a folder, an unreadable file is one problem and the rest is read.
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in ("locked.pdf", "cut.pdf", "broken.docx", "manual.pdf"):
        (folder / name).write_bytes((tmp_path / name).read_bytes())
    report = inspect_file(folder)
    assert report.usable_rows == 1 and report.problem_count == 5  # 3 files, 2 empty pages of manual.pdf
    assert {p.message.split(" ")[0] for p in report.problems} == {"broken.docx", "cut.pdf", "locked.pdf",
                                                                   "manual.pdf,"}


def test_big_pdf_reports_progress_and_can_be_cancelled(tmp_path):
    tides = ["High water", "The ebb runs", "Slack water", "The flood runs", "Low water"]
    pdf = make_pdf(tmp_path / "long.pdf", [[f"{tides[i % 5]} at {i} o'clock, said the keeper {'on duty ' * (i % 7)}."]
                                           for i in range(60)])
    seen = []
    report = inspect_file(pdf, progress=lambda message, fraction: seen.append((message, fraction)))
    assert report.usable_rows >= 1 and seen[-1][1] == 1.0 and seen[0][0] == "Reading long.pdf"
    with pytest.raises(Cancelled):
        inspect_file(pdf, cancel=lambda: True)


def test_explanation_says_how_it_differs_from_examples():
    assert "question/answer examples" in EXPLANATION and "facts" in EXPLANATION


def test_data_page_reads_a_folder_and_says_what_this_training_is(window, qtbot, tmp_path):
    from studio.project import Project
    from ui.pages.data import DataPage

    folder = tmp_path / "museum"
    folder.mkdir()
    make_docx(folder / "guide.docx")
    make_pdf(folder / "manual.pdf", MANUAL)
    win = window(Project(name="documents"))
    page = win.page(DataPage)
    page.use_file(folder)
    wait_for_data(qtbot, page)
    assert page.material.isVisibleTo(page) and page.material.text() == EXPLANATION
    assert not page.sheet_picker.isVisibleTo(page)
    assert [page.preview.item(i, 0).text() for i in range(3)] == [
        "guide.docx, paragraphs 1-3", "guide.docx, paragraphs 4-6", "manual.pdf, pages 1-5"]
    assert page.tabs.tabText(1) == "Problems (2)" and "manual.pdf, page 4 has no text" in page.problems.item(1).text()
    assert page.readiness() == (True, "3 passages, documents")
