"""Untidy workbooks like the ones people keep, built with openpyxl (.xlsx) and odfpy (.ods) for the tests.

The sheet 'Examples' has what real sheets have: a title row merged across the top, a blank row, then the
header in row 3; a topic merged down over two rows; a formula column; a price with a currency format, a
percentage, dates; an empty column; a note with no column name. An empty sheet comes first.
"""
from __future__ import annotations

import datetime
from pathlib import Path

ROWS = [  # topic, question, answer, price, added
    ("Billing", "How much is the plan?", "Twelve dollars a month.", 12.5, datetime.date(2024, 3, 7)),
    (None, "Can I pay yearly?", "Yes, and yearly saves fifteen percent.", 0.15, datetime.date(2024, 3, 8)),
    ("Devices", "How do I reset the box?", "Hold the button for ten seconds.", 3, datetime.date(2024, 3, 9)),
]


def untidy_xlsx(path: Path) -> Path:
    import openpyxl

    book = openpyxl.Workbook()
    book.active.title = "Cover"  # left empty: the reader takes the first sheet with data
    sheet = book.create_sheet("Examples")
    sheet["A1"] = "Support answers 2024"
    sheet.merge_cells("A1:F1")
    sheet.append([])
    sheet.append(["Topic", "question", "answer", None, "price", "added", "summary"])
    for topic, question, answer, price, added in ROWS:
        sheet.append([topic, question, answer, None, price, added])
    sheet.merge_cells("A4:A5")
    sheet["E4"].number_format = '"$"#,##0.00'
    sheet["E5"].number_format = "0%"
    for row in (4, 5, 6):
        sheet[f"F{row}"].number_format = "d mmm yyyy"
        sheet[f"G{row}"] = f'=B{row}&" "&C{row}'
    sheet["H6"] = "check this one"
    other = book.create_sheet("Drafts")
    other.append(["question", "answer"])
    other.append(["Draft question?", "Draft answer."])
    book.save(path)
    return path


def untidy_ods(path: Path) -> Path:
    """The same sheet as an .ods file written by odfpy: each cell holds its shown text, as LibreOffice
    writes it, and the value beside it."""
    from odf.opendocument import OpenDocumentSpreadsheet
    from odf.table import CoveredTableCell, Table, TableCell, TableRow
    from odf.text import P

    doc = OpenDocumentSpreadsheet()

    def cell(text=None, value=None, kind="string", **spans):
        attributes = {"valuetype": kind} if text is not None else {}
        if value is not None:
            attributes["datevalue" if kind == "date" else "value"] = value
        element = TableCell(**attributes, **spans)
        if text is not None:
            element.addElement(P(text=text))
        return element

    doc.spreadsheet.addElement(Table(name="Cover"))
    table = Table(name="Examples")
    rows = [[cell("Support answers 2024", numbercolumnsspanned=6)] + [CoveredTableCell() for _ in range(5)], [],
            [cell("Topic"), cell("question"), cell("answer"), cell(), cell("price"), cell("added")]]
    shown = [("$12.50", "12.5", "7 Mar 2024", "2024-03-07"), ("15%", "0.15", "8 Mar 2024", "2024-03-08"),
             ("3", "3", "9 Mar 2024", "2024-03-09")]
    for (topic, question, answer, _, _), (price, value, date, iso) in zip(ROWS, shown):
        first = (cell(topic, numberrowsspanned=2) if topic == "Billing" else CoveredTableCell() if topic is None
                 else cell(topic))
        rows.append([first, cell(question), cell(answer), cell(), cell(price, value, "float"),
                     cell(date, iso, "date")])
    for cells in rows:
        row = TableRow()
        for element in cells:
            row.addElement(element)
        table.addElement(row)
    doc.spreadsheet.addElement(table)
    doc.save(str(path))
    return path
