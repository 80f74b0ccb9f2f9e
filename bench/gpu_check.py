"""Everything only a GPU can check, as one prepared command for the GPU machine (one H200, at most 8 minutes).

    python bench/gpu_check.py --out DIR     # on a machine with an NVIDIA GPU
    python bench/gpu_check.py --dry-run     # the same stages on this CPU with tiny shapes (a test runs it)

Stages, each against a deadline counted from the script's start, so the command always ends in time and
keeps what it measured (results are written after every configuration):

  1. CUDA tests (0 - 280 s, in the background): `pytest -m gpu` on every test file that marks a test gpu:
     the studio's trainer on CUDA in bf16 with packed rows and varlen attention (and offloaded checkpoints),
     fp16, QLoRA and 8-bit bases, stop and resume, an out-of-memory error caught and explained, the parity
     reference and the GPU queries (tests/test_gpu.py), varlen against SDPA (tests/test_packing.py), and the
     multi-GPU tests, which skip themselves on one GPU.
  2. Planner accuracy (0 - 280 s, beside stage 1): bench/vram_accuracy.py's CHECK_CASES, 22 configurations
     of five published shapes with random weights (SmolLM2-135M, Qwen2.5-0.5B, Qwen2.5-1.5B, Llama-3.2-3B,
     Qwen2.5-7B; full, LoRA, DoRA, QLoRA, 8-bit; ranks 8-64; 512-4096 tokens; checkpointing on and off;
     three optimizers), 3 steps each with the studio's trainer, torch.cuda.max_memory_reserved() against the
     planner's reserved_bytes. One process per shape, two at a time (memory counters are per process); no
     case starts after 240 s and a shape's process is stopped at 280 s.
  3. Speed (280 - 455 s, the GPU to itself): bench/throughput.py's 1.5B case (Qwen2.5-1.5B shape, LoRA r16 on
     all 7 projections, lengths 64..1024): the studio, the plain Trainer+PEFT recipe, Unsloth, the plain recipe
     with expandable segments, the studio without checkpointing, in that order of importance, each in its own
     process, each stopped at the stage's deadline.
  4. A one-screen summary, printed last and saved as summary.txt.

Results under --out (the device's $OUT): bench/results/vram_accuracy.json and bench/results/throughput.json
(device, versions, date; the formats of the two benchmark scripts, so `bench/vram_accuracy.py --rescore`
works on them once copied into bench/results/), pytest-gpu.xml and pytest-gpu.log, summary.txt.

The device command. Once, here, from the root of the checkout the device tool sends (the wheels land in the
ignored .whl/, 14 MB: Unsloth and what it needs beyond the machine's packages, bitsandbytes 0.50.2 trimmed to
its CUDA 13 and CPU libraries, and the studio's two small pure-Python dependencies the machine lacks; the
script adds .whl to .git/info/exclude, which a git worktree keeps elsewhere: there, run it in a folder with a
.git/info/ of its own and move .whl over):

    /work/shared/bench/unsloth_wheels.sh .whl
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \\
        --platform manylinux2014_x86_64 -d .whl tomli_w platformdirs

then one call of the device tool with carry [".whl"] and timeout_s 600:

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \\
      .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \\
      HF_DATASETS_OFFLINE=1 UNSLOTH_DISABLE_STATISTICS=1 PYTHONUNBUFFERED=1 || exit; \\
    timeout 470 python3 bench/gpu_check.py --out $OUT 2>&1 | tee $OUT/gpu_check.log

and copy the returned bench/results/*.json into bench/results/. The time on paper, for the 8-minute budget
(the machine's start, a minute or more, is the device tool's and comes before it):

    install the carried wheels                                  ~10 s
    stages 1 + 2 side by side                                  280 s at most (deadlines above)
      1: collection ~10 s; eight worker processes training a 2-layer model, ~15 s each (imports
         dominate; the stop-and-resume run takes 200 steps), and one run in the test process; ~150 s
      2: random checkpoints of the five shapes (26 GB of bf16 written once) ~60 s; 22 loads (page cache)
         and 3 steps each, 1-10 s; two lanes: 7B alone (~100 s), the four smaller ones after each other
         (~130 s); a lane past 240 s skips its remaining cases, saying so
    stage 3                                                    175 s at most
      the 1.5B checkpoint ~10 s; studio, plain, plain with expandable segments ~25 s each (imports, load,
      2 warm-up and 10 timed steps of 4 x 1024 tokens, held-out loss); Unsloth ~90 s (import ~35 s, first
      step ~35 s: it compiles); the studio without checkpointing last, only if time is left
    summary                                                     ~1 s
    total                                                      ~465 s, cut at 470 s by `timeout` at worst
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import throughput  # noqa: E402 - bench/ is this script's folder
import vram_accuracy  # noqa: E402
from benchlib import versions  # noqa: E402

TESTS_BY, PLANNER_BY, PLANNER_STOP_AT, SPEED_BY = 280, 240, 280, 455  # seconds from the start (see above)
PLANNER_LANES = 2
SPEED_RECIPES = ["studio", "plain", "unsloth", "plain_expandable", "studio_nockpt"]
RECIPE_CAP = {"unsloth": 150}  # most seconds one recipe may take; others 90
DRY = {"tests_by": 240, "planner_by": 200, "planner_stop_at": 400, "speed_by": 600,
       "recipes": ["studio", "plain", "unsloth"]}
VERSIONS = ("torch", "transformers", "peft", "accelerate", "bitsandbytes", "unsloth", "unsloth_zoo", "trl")


class Clock:
    def __init__(self):
        self.start = time.time()

    def at(self, seconds: float) -> float:
        """The wall-clock time `seconds` after the start."""
        return self.start + seconds

    def left(self, seconds: float) -> float:
        return self.at(seconds) - time.time()

    def now(self) -> float:
        return time.time() - self.start


# --- stage 1: the CUDA tests ---------------------------------------------------------------------------------

def gpu_test_files() -> list[str]:
    """Every test file with a test marked gpu (other files may import what the GPU machine lacks, PySide6)."""
    return [str(p.relative_to(ROOT)) for p in sorted((ROOT / "tests").glob("test_*.py"))
            if "pytest.mark.gpu" in p.read_text(encoding="utf-8")]


def start_tests(out: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-rA", "-p", "no:cacheprovider",
           f"--junitxml={out / 'pytest-gpu.xml'}", *gpu_test_files()]
    if importlib.util.find_spec("pytest_timeout"):
        cmd.append("--timeout=200")  # one test hanging must not cost the others
    log = (out / "pytest-gpu.log").open("w", encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    return subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def finish_tests(proc: subprocess.Popen, seconds_left: float) -> str | None:
    """Wait for the tests until the deadline; stop them (and their workers) past it."""
    try:
        proc.wait(timeout=max(1.0, seconds_left))
        return None
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return "stopped at the stage's deadline"


def test_outcomes(xml_path: Path) -> dict:
    """{"passed": [...], "failed": [(name, first line)], "skipped": [(name, reason)]} from pytest's JUnit XML."""
    outcome = {"passed": [], "failed": [], "skipped": []}
    if not xml_path.is_file():
        return outcome
    for case in ET.parse(xml_path).getroot().iter("testcase"):
        name = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
        problem = case.find("failure") if case.find("failure") is not None else case.find("error")
        skipped = case.find("skipped")
        if problem is not None:
            outcome["failed"].append((name, (problem.get("message") or "").splitlines()[0][:150] if
                                      problem.get("message") else "see pytest-gpu.log"))
        elif skipped is not None:
            outcome["skipped"].append((name, (skipped.get("message") or "")[:100]))
        else:
            outcome["passed"].append(name)
    return outcome


# --- stage 2: the planner against measured peaks ----------------------------------------------------------

def planner_stage(out: Path, device: str, device_name: str, cases: list[dict], cache: Path, clock: Clock,
                  by: float, stop_at: float) -> dict:
    groups: dict[str, list] = {}
    for index, case in enumerate(cases):
        groups.setdefault(case["model"], []).append([index, case])
    records: dict[int, dict] = {}
    path = out / "bench" / "results" / "vram_accuracy.json"
    saving = threading.Lock()  # the lanes save the same file

    def show_and_save(record: dict) -> None:
        shown = (f"estimate {record['estimate_bytes'] / 2**30:6.2f} GiB, measured "
                 f"{record['measured_bytes'] / 2**30:6.2f} GiB ({record['error_pct']:+.1f} %)"
                 if device == "cuda" and "error_pct" in record else
                 f"{record['error_pct']:+.1f} % (allocated, CPU)" if "error_pct" in record else
                 f"not measured: {record.get('skipped') or record.get('error')}")
        print(f"[{clock.now():5.0f} s] planner {record['case']:2d} {record['model']:<13} {record['method']:<8} "
              f"seq {record['max_seq_len']:<5} batch {record['batch_size']} "
              f"ckpt {int(record['gradient_checkpointing'])}: {shown}", flush=True)
        with saving:
            records[record["case"]] = record
            vram_accuracy._save(path, device, device_name, dict(sorted(records.items())))

    def lane(jobs: list) -> None:
        vram_accuracy.measure_group(jobs, device, str(cache), clock.at(by), clock.left(stop_at), show_and_save)

    with ThreadPoolExecutor(PLANNER_LANES) as pool:  # the largest shape first, on a lane of its own
        list(pool.map(lane, sorted(groups.values(), key=lambda jobs: -_size(jobs[0][1]["model"]))))
    saved = json.loads(path.read_text(encoding="utf-8"))
    saved.update(script="bench/gpu_check.py", cases_planned=len(cases))
    path.write_text(json.dumps(saved, indent=2), encoding="utf-8")
    return saved


def _size(model: str) -> int:
    from studio.plan import shape_from_config
    return shape_from_config(vram_accuracy.MODELS[model]).total_params


# --- stage 3: speed -----------------------------------------------------------------------------------------

def speed_stage(out: Path, device: str, device_name: str, case: dict, index, recipes: list[str], cache: Path,
                clock: Clock, by: float) -> dict:
    path = out / "bench" / "results" / "throughput.json"
    measured_with = versions(*VERSIONS)
    record: dict = {}

    def save(rec: dict) -> None:
        rec.update(device=device_name, versions=measured_with, script="bench/gpu_check.py",
                   date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
        throughput._write(path, [rec])

    for recipe in recipes:
        left = clock.left(by)
        if left < 20:
            record[f"detail_{recipe}"] = {"error": "not run: the time budget ran out first"}
            save(record)
            continue
        print(f"[{clock.now():5.0f} s] speed: {recipe}", flush=True)
        throughput.measure_case(index, case, [recipe], cache, device, int(min(RECIPE_CAP.get(recipe, 90), left)),
                                record, save)
    return record


# --- stage 4: the summary ------------------------------------------------------------------------------------

def summary(device_name: str, tests: dict, tests_note: str | None, planner: dict, speed: dict,
            stage_seconds: dict, dry_run: bool) -> str:
    v = versions(*VERSIONS)
    lines = [f"GPU check on {device_name}, {datetime.date.today()}: "
             + ", ".join(f"{k} {v[k]}" for k in VERSIONS if v.get(k)) + (" (DRY RUN: not a result)" if dry_run else "")]
    lines.append(f"CUDA tests: {len(tests['passed'])} passed, {len(tests['failed'])} failed, "
                 f"{len(tests['skipped'])} skipped" + (f" ({tests_note})" if tests_note else ""))
    lines += [f"  FAILED {name}: {why}" for name, why in tests["failed"]]
    reasons: dict[str, int] = {}
    for _, why in tests["skipped"]:
        reasons[why] = reasons.get(why, 0) + 1
    lines += [f"  skipped x{n}: {why}" for why, n in reasons.items()]
    records = planner.get("records", [])
    s = planner.get("summary") or {}
    unmeasured = [r for r in records if "error_pct" not in r]
    if s:
        lines.append(f"Planner vs measured, {s['cases_measured']} of {planner.get('cases_planned', len(records))} "
                     f"configurations ({planner.get('compared', '')}):")
        lines.append(f"  median |error| {s['median_abs_error_pct']} % (target <= 5), worst {s['worst_abs_error_pct']} %"
                     f" (<= 10), most under {s['worst_underestimate_pct']} % (>= -5): "
                     + ("MEETS the target" if s["meets_target"] else "MISSES the target"))
        worst = sorted((r for r in records if "error_pct" in r), key=lambda r: -abs(r["error_pct"]))[:3]
        lines += [f"  {r['error_pct']:+6.1f} %  {r['model']} {r['method']} seq {r['max_seq_len']} batch "
                  f"{r['batch_size']} ckpt {int(r['gradient_checkpointing'])} ({r.get('estimate_peak_phase')})"
                  for r in worst]
    else:
        lines.append("Planner vs measured: nothing measured")
    lines += [f"  not measured: case {r['case']} {r['model']} {r['method']}: {r.get('skipped') or r.get('error')}"
              for r in unmeasured[:4]]
    if len(unmeasured) > 4:
        lines.append(f"  ... and {len(unmeasured) - 4} more not measured")
    tok = {r: speed.get(f"tokens_per_s_{r}") for r in SPEED_RECIPES}
    if any(tok.values()):
        lines.append(f"Speed, {speed.get('model')} {speed.get('method')} r{speed.get('rank')}, lengths "
                     f"{speed.get('lengths')}, real tokens/s: " + ", ".join(
                         f"{r} {t:.0f}" if t else f"{r} -" for r, t in tok.items()))

        def ratio(key, target, better_high=True):
            value = speed.get(key)
            if value is None:
                return f"{key} -"
            ok = value >= target if better_high else value <= target
            return f"{key} {value:.2f} ({'>=' if better_high else '<='} {target}: {'ok' if ok else 'MISSED'})"
        lines.append("  " + "; ".join([ratio("speedup_vs_plain", 2.5), ratio("speedup_vs_unsloth", 1.0),
                                       ratio("memory_vs_plain", 0.5, better_high=False)])
                     + f"; vs plain+expandable {speed.get('speedup_vs_plain_expandable') or '-'}")
    failed = {r: speed[f"detail_{r}"]["error"] for r in SPEED_RECIPES
              if isinstance(speed.get(f"detail_{r}"), dict) and "error" in speed[f"detail_{r}"]}
    lines += [f"  {r}: {why[:160]}" for r, why in failed.items()]
    lines.append("Stage seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in stage_seconds.items()))
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="the same stages on this CPU with tiny shapes")
    ap.add_argument("--out", type=Path, help="where results go (default: $OUT, else a temporary folder)")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "ftstudio-gpu-check",
                    help="random-init checkpoints (26 GB for the real check)")
    args = ap.parse_args()
    clock = Clock()
    import torch
    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU here; run it on the GPU machine, or try --dry-run.")
        return 2
    out = args.out or Path(os.environ.get("OUT") or tempfile.mkdtemp(prefix="gpu-check-"))
    (out / "bench" / "results").mkdir(parents=True, exist_ok=True)
    dry = args.dry_run
    device = "cpu" if dry else "cuda"
    device_name = "cpu (gpu_check --dry-run)" if dry else torch.cuda.get_device_name(0)
    tests_by, planner_by, stop_at, speed_by = ((DRY["tests_by"], DRY["planner_by"], DRY["planner_stop_at"],
                                               DRY["speed_by"]) if dry else
                                               (TESTS_BY, PLANNER_BY, PLANNER_STOP_AT, SPEED_BY))
    print(f"[{clock.now():5.0f} s] gpu_check on {device_name}: tests {gpu_test_files()}", flush=True)

    tests = start_tests(out)
    planner = planner_stage(out, device, device_name, vram_accuracy.DRY_CHECK_CASES if dry else
                            vram_accuracy.CHECK_CASES, args.cache / "planner", clock, planner_by, stop_at)
    planner_s = clock.now()
    tests_note = finish_tests(tests, clock.left(tests_by))
    tests_s = clock.now()
    print(f"[{tests_s:5.0f} s] CUDA tests done", flush=True)
    case, index = ((throughput.QUICK_CASE, 0) if dry else (throughput.CASES[2], 2))
    speed = speed_stage(out, device, device_name, case, index, DRY["recipes"] if dry else SPEED_RECIPES,
                        args.cache / "speed", clock, speed_by)
    stages = {"tests (beside the planner)": tests_s, "planner": planner_s, "speed": clock.now() - tests_s,
              "total": clock.now()}
    text = summary(device_name, test_outcomes(out / "pytest-gpu.xml"), tests_note, planner, speed, stages, dry)
    (out / "summary.txt").write_text(text + "\n", encoding="utf-8")
    print("\n" + text, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
