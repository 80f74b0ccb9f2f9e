"""Cold start and freezes of the desktop app, each in a new Python process (offscreen):

* start-up: seconds from the new process to the main window painted, and the longest GUI-thread stall in the
  first 5 s (a 10 ms timer on the GUI thread; the longest gap between its ticks is the worst freeze a user saw);
* each page opened 0.5 s after the window is shown: the longest stall in the 3 s after;
* closing: when idle, and during training (answering "stop, save and close?" with Yes): how long close() took,
  the longest stall until the run's worker ended, and whether the run was saved (resumable).

Run: QT_QPA_PLATFORM=offscreen python bench/cold_start.py [--runs 3] [--no-training]
Writes bench/results/cold_start.json."""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHILD = r"""
import json, os, sys, time
T0 = float(os.environ["FTSTUDIO_T0"])
MODE = sys.argv[1]
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox
app = QApplication([])
app.setQuitOnLastWindowClosed(False)  # this script ends the app once the closed window's work has ended
gaps = {"worst": 0.0, "last": None}
def tick():
    now = time.perf_counter()
    if gaps["last"] is not None:
        gaps["worst"] = max(gaps["worst"], now - gaps["last"])
    gaps["last"] = now
def measure_from_now():
    gaps["worst"], gaps["last"] = 0.0, None
heartbeat = QTimer()
heartbeat.setInterval(10)
heartbeat.timeout.connect(tick)
heartbeat.start()
from studio.project import load_project
from ui import theme
from ui.app import open_window
from ui.tasks import running_tasks
theme.apply("light")
project = load_project(os.environ["BENCH_PROJECT"]) if MODE != "welcome" else None
window = open_window(project)
window.resize(1366, 768)
window.show()
result = {}
def done():
    result["torch_loaded"] = "torch" in sys.modules
    print("RESULT " + json.dumps(result), flush=True)
    window.studio.dirty = False
    window.close()
    wait_then_quit()
def wait_then_quit():
    if running_tasks():
        QTimer.singleShot(100, wait_then_quit)
    else:
        app.quit()
def painted():
    result["shown_s"] = time.time() - T0
    measure_from_now()
    if MODE in ("startup", "welcome"):
        QTimer.singleShot(5000, lambda: (result.update(worst_stall_s=gaps["worst"]), done()))
    elif MODE.startswith("page:"):
        def open_page():
            measure_from_now()
            window.stages.setCurrentRow(int(MODE.split(":")[1]))
            QTimer.singleShot(3000, lambda: (result.update(page=window.pages.currentWidget().title,
                                                         worst_stall_s=gaps["worst"]), done()))
        QTimer.singleShot(500, open_page)
    elif MODE == "close_idle":
        QTimer.singleShot(3000, close_now)
    elif MODE == "close_training":
        from ui.pages.train import TrainPage
        train = window.page(TrainPage)
        window.go_to(TrainPage)
        train.start_training()
        def wait_for_steps():
            if train.plots.points >= 2:
                close_now()
            elif train.process is None and train.watching is None and time.time() - T0 > 30:
                result["error"] = train.problem_text.text() or train.status.text()
                done()
            else:
                QTimer.singleShot(200, wait_for_steps)
        QTimer.singleShot(500, wait_for_steps)
def answer_yes():
    box = QApplication.activeModalWidget()
    if isinstance(box, QMessageBox):
        box.button(QMessageBox.StandardButton.Yes).click()
    else:
        QTimer.singleShot(20, answer_yes)
def close_now():
    from ui.pages.train import TrainPage
    train = window.page(TrainPage)
    run_dir = window.studio.run_dir
    measure_from_now()
    QTimer.singleShot(20, answer_yes)
    window.studio.dirty = False
    started = time.perf_counter()
    window.close()
    result["close_call_s"] = time.perf_counter() - started
    result["hidden_after_close"] = not window.isVisible()
    def finished():
        if running_tasks():
            QTimer.singleShot(50, finished)
            return
        result["worst_stall_s"] = gaps["worst"]
        result["until_saved_s"] = time.perf_counter() - started
        if MODE == "close_training":
            from studio.train.state import read_run
            state = read_run(run_dir)
            result["saved_resumable"] = bool(state.stopped and state.resumable)
            result["run_state"] = state.describe()
        print("RESULT " + json.dumps(result), flush=True)
        app.quit()
    finished()
QTimer.singleShot(0, painted)
app.exec()
"""


def one_run(mode: str, project: Path, timeout: int = 900) -> dict:
    env = {**os.environ, "FTSTUDIO_T0": repr(time.time()), "BENCH_PROJECT": str(project),
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", CHILD, mode], check=False, cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"{mode}: no result\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return json.loads(line.removeprefix("RESULT "))


def rounded(value):
    return round(value, 3) if isinstance(value, float) else value


def versions() -> dict:
    import PySide6

    out = {"python": platform.python_version(), "pyside6": PySide6.__version__}
    try:
        from importlib.metadata import version

        out["torch"] = version("torch")
    except Exception:  # noqa: BLE001 - reported as missing
        out["torch"] = None
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-training", action="store_true", help="skip closing during training")
    args = parser.parse_args()
    from studio.starter import starter_project
    from ui.app import PAGE_CLASSES

    work = Path(tempfile.mkdtemp(prefix="cold-start-"))
    project = starter_project(work / "pirate-demo" / "pirate-demo.ftproj.toml").path
    one_run("startup", project)  # warm the OS file cache: a user's second start is the common case
    startups = [one_run("startup", project) for _ in range(args.runs)]
    welcome = [one_run("welcome", project) for _ in range(args.runs)]
    pages = {}
    for index, cls in enumerate(PAGE_CLASSES):
        runs = [one_run(f"page:{index}", project) for _ in range(args.runs)]
        pages[cls.title] = {"worst_stall_s": [rounded(r["worst_stall_s"]) for r in runs]}
    closing = {"idle": [{k: rounded(v) for k, v in one_run("close_idle", project).items()}
                        for _ in range(args.runs)]}
    if not args.no_training:
        closing["during_training"] = [{k: rounded(v) for k, v in one_run("close_training", project).items()}]
    times = [r["shown_s"] for r in startups]
    result = {
        "startup": {"median_s": rounded(statistics.median(times)), "max_s": rounded(max(times)),
                    "runs_s": [rounded(t) for t in times],
                    "worst_stall_first_5s_s": [rounded(r["worst_stall_s"]) for r in startups],
                    "torch_imported_in_the_app_in_5s": any(r["torch_loaded"] for r in startups)},
        "first_start_welcome": {"shown_s": [rounded(r["shown_s"]) for r in welcome],
                                "worst_stall_first_5s_s": [rounded(r["worst_stall_s"]) for r in welcome]},
        "page_opened_0.5s_after_start": pages,
        "closing": closing,
        "machine": f"{platform.processor() or platform.machine()}, {platform.system()}, {os.cpu_count()} cores, "
                   "no GPU", "versions": versions(),
        "load_average_1min": round(os.getloadavg()[0], 2), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "QT_QPA_PLATFORM=offscreen python bench/cold_start.py --runs " + str(args.runs)}
    out = ROOT / "bench" / "results" / "cold_start.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
