"""Fault probes that are too slow for the test suite: kill the export CLI while the converter writes, and
train the same new data twice at once. Writes bench/results/fault_probes.json (machine, versions, date).

    python bench/fault_probes.py            # a few minutes on a CPU, with the embedded model
"""
from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "resources" / "samples" / "pirate_chat.jsonl"
RESULTS = ROOT / "bench" / "results" / "fault_probes.json"


def cli(*args, cwd: Path, env: dict, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "studio.cli", *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def new_project(folder: Path, env: dict, steps: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "studio.cli", "new", "p", "--data", str(SAMPLE)], cwd=folder, env=env,
                   check=True, capture_output=True)
    path = folder / "p.ftproj.toml"
    path.write_text(path.read_text().replace("max_steps = 0", f"max_steps = {steps}")
                    .replace("max_seq_len = 1024", "max_seq_len = 128")
                    .replace("after_training = true", "after_training = false"))  # the probes are not about the check
    return path


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                pass
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def probe_kill_export(work: Path, env: dict) -> dict:
    """kill -9 the export CLI while its converter writes: does the converter die, is the .partial swept?"""
    project = new_project(work / "kill-export", env)
    train = subprocess.run([sys.executable, "-m", "studio.cli", "train", str(project)], cwd=project.parent, env=env,
                           capture_output=True, text=True)
    run = Path(next(line.split(": ", 1)[1] for line in train.stdout.splitlines() if line.startswith("Run folder")))
    export = cli("export", str(run), "--quant", "f16", "--no-check", cwd=project.parent, env=env,
                 start_new_session=True)
    partial, deadline = None, time.time() + 600
    while partial is None and time.time() < deadline and export.poll() is None:
        partial = next(iter((run / "export").glob(".*.partial")), None) if (run / "export").is_dir() else None
        time.sleep(0.2)
    converters = [c for t in children_of(export.pid) for c in [t, *children_of(t)]]
    os.kill(export.pid, signal.SIGKILL)
    export.wait()
    time.sleep(3)
    survivors = [pid for pid in converters if alive(pid)]
    left = sorted(p.name for p in (run / "export").glob(".*.partial"))
    again = subprocess.run([sys.executable, "-m", "studio.cli", "export", str(run), "--quant", "f16", "--no-check"],
                           cwd=project.parent, env=env, capture_output=True, text=True)
    return {"partial_seen_while_writing": bool(partial), "children_running_after_kill": len(survivors),
            "partials_left_after_kill": left, "next_export_exit": again.returncode,
            "partials_after_next_export": sorted(p.name for p in (run / "export").glob(".*.partial"))}


def probe_two_trainings(work: Path, env: dict) -> dict:
    """Two trainings of the same data, never tokenized before, started together."""
    project = new_project(work / "twice", env)
    runs = [cli("train", str(project), cwd=project.parent, env=env) for _ in range(2)]
    outputs = [proc.communicate()[0] for proc in runs]
    return {"exit_codes": [proc.returncode for proc in runs],
            "nothing_was_written_errors": sum("Nothing was written" in out for out in outputs)}


def main() -> int:
    import torch
    import transformers

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = {**os.environ, "FTSTUDIO_HOME": str(work / "home"), "PYTHONPATH": str(ROOT),
               "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        (work / "home").mkdir()
        # the embedded model and converter from the usual cache, as set up; tokenized data starts cold
        from studio import paths
        for name in ("models", "tools"):
            (work / "home" / name).symlink_to(paths.home() / name)
        results = {"kill_export_during_conversion": probe_kill_export(work, env),
                   "two_trainings_of_new_data": probe_two_trainings(work, env)}
    results["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                          "torch": torch.__version__, "transformers": transformers.__version__,
                          "date": time.strftime("%Y-%m-%d")}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
