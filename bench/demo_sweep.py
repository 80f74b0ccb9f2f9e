"""The sweep behind `ftstudio demo`'s defaults, then four methods side by side on the same data and steps.

Each run is the demo's own project (studio.demo.demo_project: the embedded SmolLM2-135M-Instruct, the pirate
sample, 10% held out, packed 2 x 256-token batches) with a few settings changed, trained by the studio's
worker, which checks it after training (studio.evaluate: the held-out split and the general check set, base
against fine-tuned). Part 1 varies learning rate and steps (rank 16, alpha 32); the demo takes the config
that is closer to the pirate answers on the most held-out prompts while keeping the base's general knowledge
(ties: fewer steps, then the lower learning rate). Part 2 trains LoRA r8, DoRA and full fine-tuning with the
same 40 steps beside config A (LoRA r16, 1e-3): full fine-tuning at the studio's full-fine-tuning preset rate.

Each config writes bench/results/demo_sweep/<name>.json when it ends; `--collect` gathers them into
bench/results/demo_sweep.json. Run: OMP_NUM_THREADS=1 python bench/demo_sweep.py [--only A,B] [--out DIR]
(one thread per process: on a CPU shared with other work, two spinning threads lose far more than they gain;
several configs can run side by side with --only).
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
PARTS = ROOT / "bench" / "results" / "demo_sweep"  # one file per config, so configs can run side by side
SWEEP = {  # part 1, rank 16 and alpha 32: name -> (learning rate, steps)
    "A": (1e-3, 40), "B": (5e-4, 40), "C": (2e-4, 40), "D": (1e-3, 20),
}
METHODS = {  # part 2, 40 steps each beside A (LoRA r16): LoRA-family at A's rate, full at the full-fine-tuning preset's
    "LoRA-r8": {"method.rank": 8, "method.alpha": 16, "train.learning_rate": 1e-3},
    "DoRA-r16": {"method.method": "dora", "train.learning_rate": 1e-3},
    "full": {"method.method": "full", "train.learning_rate": 2e-5},
}


def train_one(out: Path, name: str, changes: dict) -> dict:
    from studio.project import save_project

    folder = out / name
    project = demo_project(folder, steps=40)
    for key, value in changes.items():
        section, _, field = key.partition(".")
        setattr(getattr(project, section), field, value)
    project.evaluate.after_export = False
    project.evaluate.check = "thorough"  # every general question: the recorded results were measured so
    save_project(project, folder / "pirate-demo.ftproj.toml")
    started = time.time()
    run_dir, final = run_training(project, on_event=lambda e: print(f"  [{name}] {e['message']}", flush=True)
                                  if e["type"] == "log" and "evaluation" in e else None)
    row = {"name": name, "changes": changes, "seconds_with_check": round(time.time() - started, 1),
           "final": final.get("type")}
    row.update(run_row(run_dir))
    report = read_report(report_path(run_dir))
    if report:
        row["report"] = {k: report[k] for k in ("task", "general", "verdict", "seconds", "device")}
        row["report"]["general"] = {k: v for k, v in report["general"].items() if k != "rows"}
    return row


def pick(rows: list[dict]) -> dict:
    """Closer to the pirate answers on the most held-out prompts while keeping general knowledge; ties: fewer
    steps, then the lower learning rate."""
    kept = [r for r in rows if r.get("kept") == "kept" and r.get("closer") is not None] or rows
    return max(kept, key=lambda r: (r.get("closer") or 0, -r["changes"]["train.max_steps"],
                                    -r["changes"]["train.learning_rate"]))


def collect() -> dict:
    import torch
    import transformers

    parts = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(PARTS.glob("*.json"))}
    sweep = [parts[n] for n in SWEEP if n in parts]
    methods = [parts[n] for n in ("A", *METHODS) if n in parts]
    methods_20 = [parts[n] for n in ("D", *(f"{m}@20" for m in METHODS)) if n in parts]
    results = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, "
               "each config in its own process with OMP_NUM_THREADS=1, several side by side",
               "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
               "note": "the CPU was shared with other work while this ran: seconds are wall time under that load",
               "rule": pick.__doc__.strip(), "sweep": sweep, "methods": methods, "methods_20_steps": methods_20,
               "chosen": pick(sweep + [r for r in methods_20 + methods if r["method"] != "full"])["name"]
               if sweep else None}
    RESULTS.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return results


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(Path.home() / "ftstudio-demo-sweep"))
    parser.add_argument("--only", default="", help="comma-separated configs (A,B,C,D,LoRA-r8,DoRA-r16,full)")
    parser.add_argument("--collect", action="store_true", help="only gather the finished configs into one file")
    parser.add_argument("--steps", type=int, default=40, help="steps of the part-2 runs (saved as NAME@STEPS)")
    args = parser.parse_args()
    if not args.collect:
        PARTS.mkdir(parents=True, exist_ok=True)
        for name in [n for n in [*SWEEP, *METHODS] if not args.only or n in args.only.split(",")]:
            changes = ({"train.learning_rate": SWEEP[name][0], "train.max_steps": SWEEP[name][1]} if name in SWEEP
                       else {**METHODS[name], "train.max_steps": args.steps})
            label = name if name in SWEEP or args.steps == 40 else f"{name}@{args.steps}"
            row = train_one(Path(args.out), label, changes)
            (PARTS / f"{label}.json").write_text(json.dumps(row, indent=1) + "\n", encoding="utf-8")
    collect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
