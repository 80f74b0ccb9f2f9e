"""The sweep behind `ftstudio demo`'s defaults, then four methods side by side on the same data and steps.

Each run is the demo's own project (studio.demo.demo_project: the embedded SmolLM2-135M-Instruct, the pirate
sample, 10% held out, packed 2 x 256-token batches) with a few settings changed, trained by the studio's
worker, which checks it after training (studio.evaluate: the held-out split and the general check set, base
against fine-tuned). Part 1 varies learning rate and steps (rank 16, alpha 32); the demo takes the config
that is closer to the pirate answers on the most held-out prompts while keeping the base's general knowledge
(ties: fewer steps, then the lower learning rate). Part 2 trains LoRA r8, DoRA and full fine-tuning with the
chosen steps (full fine-tuning at the studio's full-fine-tuning preset rate, 2e-5) beside the chosen LoRA r16.

Results go to bench/results/demo_sweep.json after every run, so a cut-short sweep still leaves its numbers.
Run: OMP_NUM_THREADS=1 python bench/demo_sweep.py [--out DIR] [--only A,B]  (one thread: on a CPU shared with
other work, two spinning threads lose far more than they gain)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from studio.demo import demo_project  # noqa: E402
from studio.evaluate.compare import run_row  # noqa: E402
from studio.evaluate.report import read_report, report_path  # noqa: E402
from studio.train import run_training  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "demo_sweep.json"
SWEEP = {  # name: (learning rate, steps); rank 16, alpha 32
    "A": (1e-3, 40), "B": (5e-4, 40), "C": (2e-4, 40), "D": (1e-3, 20),
}


def train_one(out: Path, name: str, changes: dict) -> dict:
    folder = out / name
    project = demo_project(folder, steps=40)
    for key, value in changes.items():
        section, _, field = key.partition(".")
        setattr(getattr(project, section), field, value)
    project.evaluate.after_export = False
    from studio.project import save_project
    save_project(project, folder / "pirate-demo.ftproj.toml")
    started = time.time()
    run_dir, final = run_training(project, on_event=lambda e: print(f"  [{name}] {e['message']}", flush=True)
                                  if e["type"] == "log" and "evaluation" in e else None)
    row = {"name": name, "changes": changes, "seconds_with_check": round(time.time() - started, 1),
           "final": final.get("type"), "run": str(run_dir)}
    report = read_report(report_path(run_dir))
    row.update(run_row(run_dir))
    if report:
        row["headline"] = report["verdict"]["headline"]
    return row


def pick(rows: list[dict]) -> dict:
    kept = [r for r in rows if r.get("kept") == "kept" and r.get("closer") is not None] or rows
    return max(kept, key=lambda r: (r.get("closer") or 0, -r["changes"]["train.max_steps"],
                                    -r["changes"]["train.learning_rate"]))


def save(results: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


def main() -> int:
    import torch
    import transformers

    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(Path.home() / "ftstudio-demo-sweep"))
    parser.add_argument("--only", default="", help="comma-separated sweep names to run (default all)")
    args = parser.parse_args()
    out = Path(args.out)
    results = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.processor() or platform.machine()}, "
               f"{os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}",
               "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
               "note": "the CPU was shared with other work while this ran: seconds are wall time under that load",
               "sweep": [], "methods": []}
    names = [n for n in SWEEP if not args.only or n in args.only.split(",")]
    for name in names:
        lr, steps = SWEEP[name]
        results["sweep"].append(train_one(out, name, {"train.learning_rate": lr, "train.max_steps": steps}))
        save(results)
    chosen = pick(results["sweep"])
    results["chosen"] = chosen["name"]
    save(results)
    steps, lr = chosen["changes"]["train.max_steps"], chosen["changes"]["train.learning_rate"]
    results["methods"].append({**chosen, "name": "LoRA r16"})
    for name, changes in (("LoRA r8", {"method.rank": 8, "method.alpha": 16, "train.learning_rate": lr}),
                          ("full", {"method.method": "full", "train.learning_rate": 2e-5}),
                          ("DoRA r16", {"method.method": "dora", "train.learning_rate": lr})):
        results["methods"].append(train_one(out, name.replace(" ", "-"), {**changes, "train.max_steps": steps}))
        results["methods"][-1]["name"] = name
        save(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
