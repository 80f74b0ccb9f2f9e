"""Spreadsheets as people keep them: .xlsx, .ods and .xls files with title rows, blank rows, merged cells,
formulas, formatted numbers and dates, several sheets, and the ways they go wrong."""
import json
from pathlib import Path

import pytest

from sheet_builders import untidy_ods, untidy_xlsx
from test_gui_pages import wait_for_data, window  # noqa: F401 - the real window, as the page tests open it
from studio.data import inspect_file, scan
from studio.data.cellformat import shown
from studio.errors import Cancelled, DataError

DATA = Path(__file__).parent / "data"
ANSWERS = ["Twelve dollars a month.", "Yes, and yearly saves fifteen percent.", "Hold the button for ten seconds."]


def rows_of(path, **kw):
    source, _, pairs = scan(path, **kw)
    pairs = list(pairs)
    return source, [row for row, problem in pairs if problem is None], [p for _, p in pairs if p]


@pytest.fixture
def xlsx(tmp_path):
    return untidy_xlsx(tmp_path / "support.xlsx")


def test_header_found_below_title_and_blank_rows_with_sheet_row_numbers(xlsx):
    report = inspect_file(xlsx)
    assert (report.kind, report.format, report.sheet, report.sheets) == ("sheet", "prompt_completion", "Examples",
                                                                          ["Examples", "Drafts"])
    assert (report.rows, report.usable_rows) == (3, 3)
    assert [r.number for r in report.preview] == [4, 5, 6]  # the rows as the program numbers them
    assert [r.origin for r in report.preview] == ["Examples, row 4", "Examples, row 5", "Examples, row 6"]
    assert [r.messages[1]["content"] for r in report.preview] == ANSWERS
    notes = "; ".join(report.evidence)
    assert "header in row 3" in notes and "the first with data of 2" in notes
    assert "columns not used by this format: 'Topic' (A), 'price' (E), 'added' (F), 'summary' (G)" in notes
    assert "no name in the header row: column H" in notes
    assert report.summary().startswith("support.xlsx, sheet 'Examples': prompt_completion format, 3 rows")


def test_cells_read_as_shown_merged_down_and_formatted(xlsx):
    _, rows, _ = rows_of(xlsx, fmt="prompt_completion", columns={"prompt": "Topic", "completion": "price"})
    assert [(r.messages[0]["content"], r.messages[1]["content"]) for r in rows] == [
        ("Billing", "$12.50"), ("Billing", "15%"), ("Devices", "3")]  # A4:A5 merged: both rows say Billing
    _, rows, _ = rows_of(xlsx, fmt="text", columns={"text": "added"})
    assert [r.text for r in rows] == ["7 Mar 2024", "8 Mar 2024", "9 Mar 2024"]


def test_formulas_without_saved_results_are_named_by_row(xlsx):
    """openpyxl writes formulas without their results; such a cell must not pass as an empty answer."""
    _, rows, problems = rows_of(xlsx, columns={"prompt": "question", "completion": "summary"})
    assert rows == [] and [p.row for p in problems] == [4, 5, 6]
    assert problems[0].message.startswith("support.xlsx, sheet 'Examples', row 4, 'summary' is a formula whose "
                                          "result was never saved")
    assert "save it" in problems[0].message


@pytest.mark.parametrize("name", ["saved_by_libreoffice.xlsx", "old_format.xls"])
def test_saved_formula_results_and_formats_from_libreoffice_files(name):
    """Files that Excel or LibreOffice saved hold each formula's result (made by tests/make_sheet_fixtures.py)."""
    _, rows, problems = rows_of(DATA / name, columns={"prompt": "Topic", "completion": "summary"})
    assert not problems
    assert [(r.number, r.messages[0]["content"], r.messages[1]["content"]) for r in rows] == [
        (4, "Billing", "How much is the plan? Twelve dollars a month."),
        (5, "Billing", "Can I pay yearly? Yes, and yearly saves fifteen percent."),
        (6, "Devices", "How do I reset the box? Hold the button for ten seconds.")]
    _, rows, _ = rows_of(DATA / name, columns={"prompt": "added", "completion": "price"})
    assert [(r.messages[0]["content"], r.messages[1]["content"]) for r in rows] == [
        ("7 Mar 2024", "$12.50"), ("8 Mar 2024", "15%"), ("9 Mar 2024", "3")]


def test_ods_reads_the_shown_text_and_merges(tmp_path):
    report = inspect_file(untidy_ods(tmp_path / "support.ods"))
    assert (report.sheet, report.sheets, report.usable_rows) == ("Examples", ["Examples"], 3)
    assert [r.number for r in report.preview] == [4, 5, 6]
    assert [r.messages[1]["content"] for r in report.preview] == ANSWERS
    _, rows, _ = rows_of(tmp_path / "support.ods", columns={"prompt": "Topic", "completion": "price"})
    assert [(r.messages[0]["content"], r.messages[1]["content"]) for r in rows] == [
        ("Billing", "$12.50"), ("Billing", "15%"), ("Devices", "3")]


def test_sheet_choice_in_the_api_and_the_cli(xlsx, capsys):
    from test_data_cli import inspect

    report = inspect_file(xlsx, sheet="Drafts")
    assert (report.sheet, report.usable_rows, report.preview[0].number) == ("Drafts", 1, 2)
    assert "sheet 'Drafts' (chosen of 2 with data)" in report.evidence
    assert report.preview[0].messages[0]["content"] == "Draft question?"
    assert inspect(xlsx, "--sheet", "Drafts", "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["sheet"], out["usable_rows"], out["preview"][0]["origin"]) == ("Drafts", 1, "Drafts, row 2")
    with pytest.raises(DataError, match="has no sheet named 'Answers'; its sheets are 'Cover', 'Examples', 'Drafts'"):
        inspect_file(xlsx, sheet="Answers")


def test_project_sheet_setting_reaches_the_training_rows(xlsx, tmp_path):
    from studio.data.prepare import read_split
    from studio.errors import ProjectError
    from studio.project import Project, load_project, save_project

    project = Project()
    project.data.train_file, project.data.sheet, project.data.eval_fraction = str(xlsx), "Drafts", 0.0
    path = save_project(project, tmp_path / "p.ftproj.toml")
    rows, _, source, _ = read_split(load_project(path))
    assert [r.messages[1]["content"] for r in rows] == ["Draft answer."] and source.sheet == "Drafts"
    project.data.train_file = "data.csv"
    with pytest.raises(ProjectError, match="data.sheet = 'Drafts' only applies to a spreadsheet"):
        project.validate()


def test_no_header_that_matches(tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    for row in ([1, 2, 3], [4, 5, 6]):
        book.active.append(row)
    book.save(tmp_path / "numbers.xlsx")
    with pytest.raises(DataError, match=r"numbers.xlsx, sheet 'Sheet': no header row in the first 2 rows with data"):
        inspect_file(tmp_path / "numbers.xlsx")
    book = openpyxl.Workbook()
    book.active.append(["Name", "City"])
    book.active.append(["Ann", "Oslo"])
    book.save(tmp_path / "people.xlsx")
    with pytest.raises(DataError, match=r"people.xlsx, sheet 'Sheet': the columns \('Name', 'City'\) match no "
                                        "dataset format"):
        inspect_file(tmp_path / "people.xlsx")
    # The same sheet trains once the columns are mapped, as for CSV (--column).
    assert inspect_file(tmp_path / "people.xlsx", columns={"prompt": "Name", "completion": "City"}).usable_rows == 1


def test_empty_protected_corrupt_and_mislabelled_workbooks(tmp_path):
    import openpyxl

    openpyxl.Workbook().save(tmp_path / "blank.xlsx")
    with pytest.raises(DataError, match="blank.xlsx: every sheet is empty"):
        inspect_file(tmp_path / "blank.xlsx")
    with pytest.raises(DataError, match="password.xlsx is protected by a password"):
        inspect_file(DATA / "password.xlsx")
    whole = untidy_xlsx(tmp_path / "whole.xlsx").read_bytes()
    (tmp_path / "cut.xlsx").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match="cut.xlsx cannot be read as a spreadsheet: it may be damaged"):
        inspect_file(tmp_path / "cut.xlsx")
    (tmp_path / "cut.ods").write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    with pytest.raises(DataError, match="cut.ods cannot be read as a spreadsheet"):
        inspect_file(tmp_path / "cut.ods")
    (tmp_path / "really_old.xlsx").write_bytes((DATA / "old_format.xls").read_bytes())
    with pytest.raises(DataError, match="really_old.xlsx is an old-format Office file"):
        inspect_file(tmp_path / "really_old.xlsx")
    assert (tmp_path / "cut.xlsx").read_bytes() == whole[: len(whole) // 2]  # nothing written over


def test_large_sheet_streams_with_progress_and_cancel(tmp_path):
    import openpyxl

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("Big")
    sheet.append(["question", "answer"])
    for i in range(3000):
        sheet.append([f"Question {i}?", f"Answer {i}."])
    book.save(tmp_path / "big.xlsx")
    seen = []
    report = inspect_file(tmp_path / "big.xlsx", progress=lambda message, fraction: seen.append(fraction))
    assert report.usable_rows == 3000 and report.preview[-1].number == 21
    assert seen[-1] == 1.0 and len(seen) >= 2 and all(0 <= f <= 1 for f in seen)
    with pytest.raises(Cancelled):
        inspect_file(tmp_path / "big.xlsx", cancel=lambda: True)


@pytest.mark.parametrize("value,code,text", [
    (4.0, "General", "4"), (0.1 + 0.2, "General", "0.3"), (1234.5, "#,##0.00", "1,234.50"),
    (0.25, "0%", "25%"), (-3.5, "0.00;[Red](0.00)", "(3.50)"), (2.5, "0", "3"), (3.14159, "0.0#", "3.14"),
    (1.5, '#,##0.00 [$€-407]', "1.50 €"), (123456, "0.00E+00", "1.23E+05"), (0, '0;-0;"none"', "none"),
    (1500000, '0.0,,"M"', "1.5M"), (True, None, "TRUE")])
def test_numbers_as_shown(value, code, text):
    assert shown(value, code) == text


def test_dates_and_times_as_shown():
    from datetime import date, datetime, time, timedelta

    assert shown(datetime(2024, 3, 7), "d/m/yyyy") == "7/3/2024"
    assert shown(datetime(2024, 3, 7), "dddd, mmmm d") == "Thursday, March 7"
    assert shown(datetime(2024, 3, 7, 14, 5, 9), "h:mm:ss AM/PM") == "2:05:09 PM"
    assert shown(datetime(2024, 3, 7, 14, 5), "yyyy-mm-dd hh:mm") == "2024-03-07 14:05"  # mm after hh: minutes
    assert shown(datetime(2024, 3, 7), "[$-409]mmmm d, yyyy;@") == "March 7, 2024"
    assert shown(time(9, 30), "h:mm") == "9:30" and shown(timedelta(hours=26, minutes=5), "[h]:mm") == "26:05"
    assert shown(date(2024, 3, 7), "General") == "2024-03-07"


def test_data_page_shows_the_sheet_picker_and_sheet_rows(window, qtbot, tmp_path):
    """The real window: a dropped workbook is read from its first sheet with data, the picker offers the
    others, and choosing one reads that sheet."""
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent

    from studio.project import Project
    from ui.pages.data import DataPage

    book = untidy_xlsx(tmp_path / "support.xlsx")
    win = window(Project(name="sheets"))
    page = win.page(DataPage)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(book))])
    page.dropEvent(QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                              Qt.KeyboardModifier.NoModifier))
    wait_for_data(qtbot, page)
    assert page.sheet_picker.isVisibleTo(page) and page.sheet_picker.currentText() == "Examples"
    assert [page.sheet_picker.itemText(i) for i in range(page.sheet_picker.count())] == ["Examples", "Drafts"]
    assert page.preview.horizontalHeaderItem(0).text() == "Where"
    assert page.preview.item(0, 0).text() == "Examples, row 4"
    assert "header in row 3" in page.evidence.text() and not page.material.isVisibleTo(page)
    page.sheet_picker.setCurrentIndex(1)
    page.sheet_picker.activated.emit(1)
    assert win.studio.project.data.sheet == "Drafts"
    qtbot.waitUntil(lambda: page.task is None and page.findings is not None
                    and page.findings.report.sheet == "Drafts", timeout=120_000)
    assert page.preview.item(0, 0).text() == "Drafts, row 2" and page.sheet_picker.currentText() == "Drafts"
