"""How long `ftstudio data inspect` takes on the big inputs people bring: a 100,000-row sheet (.xlsx and .ods)
and a 500-page PDF. Builds the files in a temporary folder, inspects each in a fresh process (wall time, CPU
time and peak memory), and writes bench/results/data_readers.json.

CPU time is the honest number on a shared machine: wall time grows with whatever else runs.
Run: python bench/data_readers.py   (needs fpdf2 and LibreOffice for the .ods; several minutes on 2 cores)"""
from __future__ import annotations

import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from benchlib import versions  # noqa: E402

ROWS, PAGES = 100_000, 500
MEASURE = """
import json, resource, sys, time
from studio.data import inspect_file
started = time.perf_counter()
report = inspect_file(sys.argv[1])
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"rows": report.rows, "usable_rows": report.usable_rows, "problems": report.problem_count,
                  "format": report.format, "wall_s": round(time.perf_counter() - started, 1),
                  "cpu_s": round(usage.ru_utime + usage.ru_stime, 1), "peak_rss_mb": usage.ru_maxrss // 1024}))
"""


def build_sheet(path: Path) -> Path:
    import openpyxl

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("Answers")
    sheet.append(["Support answers, exported 2024"])
    sheet.append([])
    sheet.append(["question", "answer", "notes", None, "added"])
    for i in range(ROWS):
        sheet.append([f"How do I reset device {i} when its screen is frozen?",
                      f"Hold the power button for ten seconds, then wait for logo {i}.", "checked" if i % 3 else None,
                      None, datetime.date(2024, 1, 1) + datetime.timedelta(days=i % 300)])
    book.save(path)
    return path


def build_pdf(path: Path) -> Path:
    from fpdf import FPDF

    class Manual(FPDF):
        def header(self):
            self.set_font("Helvetica", size=9)
            self.cell(0, 8, "Harbour Operations Handbook", align="C")
            self.ln(12)

        def footer(self):
            self.set_y(-15)
            self.set_font("Helvetica", size=9)
            self.cell(0, 10, f"Page {self.page_no()} of {PAGES}", align="C")

    pdf = Manual()
    pdf.set_font("Helvetica", size=11)
    for page in range(PAGES):
        pdf.add_page()
        for part in range(6):
            pdf.multi_cell(0, 6, f"Section {page}.{part}. Vessels longer than forty metres report to the harbour "
                                 "master two hours before arrival, stating draught, cargo and crew. Pilots board at "
                                 "the outer buoy; tugs are assigned by the duty officer according to the wind and "
                                 "the state of the tide, and every movement is logged.")
            pdf.ln(3)
    pdf.output(str(path))
    return path


def measure(path: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True, env=env,
                         check=True, timeout=1800)
    return {"file": path.name, "bytes": path.stat().st_size, **json.loads(out.stdout)}


def main() -> None:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sheet = build_sheet(tmp / "answers_100k.xlsx")
        inputs = [sheet]
        if shutil.which("soffice"):
            subprocess.run(["soffice", "--headless", "--convert-to", "ods", "--outdir", str(tmp), str(sheet)],
                           check=True, capture_output=True, timeout=1800)
            inputs.append(tmp / "answers_100k.ods")
        inputs.append(build_pdf(tmp / "handbook_500_pages.pdf"))
        for path in inputs:
            results.append(measure(path))
            print(json.dumps(results[-1]), flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    out = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
           "load_average_at_end": load, "versions": versions("openpyxl", "pypdf", "python-docx", "xlrd"),
           "results": results}
    target = ROOT / "bench" / "results" / "data_readers.json"
    target.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
