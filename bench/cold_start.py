"""Cold start of the desktop app: seconds from a new Python process to the main window painted, and whether
torch was imported before that. Run: QT_QPA_PLATFORM=offscreen python bench/cold_start.py [--runs 5]
Writes bench/results/cold_start.json."""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHILD = r"""
import os, sys, time
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from ui.app import MainWindow, first_project
from ui import theme
app = QApplication([])
theme.apply("light")
window = MainWindow(first_project())
window.show()
def painted():
    print("SHOWN_AFTER", time.time() - float(os.environ["FTSTUDIO_T0"]), flush=True)
    print("TORCH_LOADED", "torch" in sys.modules, flush=True)
    window.close()  # waits for the background GPU query, as a user's close does
    app.quit()
QTimer.singleShot(0, painted)
app.exec()
"""


def one_run() -> tuple[float, bool]:
    env = {**os.environ, "FTSTUDIO_T0": repr(time.time())}
    out = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True).stdout
    seconds = float(out.split("SHOWN_AFTER", 1)[1].split()[0])
    return seconds, "TORCH_LOADED True" in out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    one_run()  # warm the OS file cache: a user's second start is the common case
    runs = [one_run() for _ in range(args.runs)]
    times = [t for t, _ in runs]
    result = {"median_s": round(statistics.median(times), 3), "max_s": round(max(times), 3),
              "runs_s": [round(t, 3) for t in times], "torch_imported_before_shown": any(t for _, t in runs),
              "machine": f"{platform.processor() or platform.machine()}, {platform.system()}, no GPU",
              "python": platform.python_version(),
              "load_average_1min": round(os.getloadavg()[0], 2), "date": time.strftime("%Y-%m-%d")}
    out = ROOT / "bench" / "results" / "cold_start.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
