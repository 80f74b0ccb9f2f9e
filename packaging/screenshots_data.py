"""Screenshots of the Data page at 1366x768 with a spreadsheet and with a folder of documents, into
docs/screenshots/ (2-data-spreadsheet.png, 2-data-documents.png).

The workbook is untidy as real ones are (a title row, a blank row, a topic merged down, a helper column, two
sheets); the folder holds a Word file, a PDF with a blank page, and a Markdown note, made from the samples.
Run: python packaging/screenshots_data.py   (offscreen; needs fpdf2; about a minute on 2 CPU cores)"""
import csv
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "packaging"))

from PySide6.QtWidgets import QApplication  # noqa: E402
from screenshots import settle, wait_until  # noqa: E402

from studio.project import Project  # noqa: E402
from ui import theme  # noqa: E402
from ui.app import MainWindow  # noqa: E402
from ui.pages.data import DataPage  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
SAMPLES = ROOT / "resources" / "samples"


def workbook(path: Path) -> Path:
    import openpyxl

    pairs = list(csv.reader((SAMPLES / "kitchen_qa.csv").open(encoding="utf-8")))[1:]
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Answers"
    sheet["A1"] = "Kitchen help desk: answers we give"
    sheet.merge_cells("A1:E1")
    sheet.append([])
    sheet.append(["Topic", "question", "answer", "checked by", "updated"])
    for i, (question, answer) in enumerate(pairs):
        sheet.append(["Cooking" if i < 5 else "Baking" if i == 5 else None, question, answer, "Maria", "=TODAY()"])
    sheet.merge_cells("A4:A8")
    sheet.merge_cells(f"A9:A{3 + len(pairs)}")
    old = book.create_sheet("Old answers")
    old.append(["question", "answer"])
    old.append(["Is margarine healthier than butter?", "We no longer answer this one."])
    book.save(path)
    return path


def documents(folder: Path) -> Path:
    import docx
    from fpdf import FPDF

    folder.mkdir(parents=True, exist_ok=True)
    notes = (SAMPLES / "lighthouse_notes.txt").read_text(encoding="utf-8").split("\n\n")
    document = docx.Document()
    document.add_heading("The north cape light", level=1)
    for paragraph in notes[:3]:
        document.add_paragraph(" ".join(paragraph.split()))
    document.add_heading("Supplies", level=1)
    for paragraph in notes[3:]:
        document.add_paragraph(" ".join(paragraph.split()))
    document.save(folder / "keeper's handbook.docx")
    pdf = FPDF()
    for page, text in enumerate(notes * 2 + [None]):
        pdf.add_page()
        pdf.set_font("Helvetica", size=9)
        pdf.cell(0, 8, "Lighthouse log, 1921", align="C")
        pdf.ln(12)
        pdf.set_font("Helvetica", size=11)
        if text:
            pdf.multi_cell(0, 6, " ".join(text.split()))
    pdf.output(str(folder / "log 1921.pdf"))
    (folder / "fog horn.md").write_text("# Fog horn\n\nWind the clockwork every hour while the fog lasts.\n\n"
                                        "## Oil\n\nOne barrel lasts a month of fog.\n", encoding="utf-8")
    return folder


def shoot(app: QApplication, location: Path, name: str) -> None:
    project = Project(name="data-" + name)
    project.path = location.parent / f"{project.name}.ftproj.toml"
    window = MainWindow(project)
    window.resize(1366, 768)
    window.show()
    window.go_to(DataPage)
    page = window.page(DataPage)
    page.use_file(location)
    wait_until(app, lambda: page.task is None and (page.findings is not None or bool(page.error)))
    settle(app, 1.0)
    window.grab().save(str(OUT / f"2-data-{name}.png"))
    window.studio.dirty = False
    window.close()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="ftstudio-data-shots-"))
    app = QApplication([])
    theme.apply("light")
    shoot(app, workbook(work / "kitchen answers.xlsx"), "spreadsheet")
    shoot(app, documents(work / "lighthouse"), "documents")
    print(f"saved 2 screenshots to {OUT}")


if __name__ == "__main__":
    main()
