"""bench/gpu_check.py, the GPU machine's one prepared command: its dry run runs every stage on the CPU with tiny
shapes (the CUDA tests are collected and skip themselves), so it still works when a GPU session comes."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import gpu_check  # noqa: E402
import vram_accuracy  # noqa: E402


def test_the_check_fits_its_eight_minutes_on_paper():
    # every GPU-marked test file is run; the stages end before `timeout 470` in the device command
    files = gpu_check.gpu_test_files()
    assert "tests/test_gpu.py" in files and "tests/test_packing.py" in files
    assert gpu_check.PLANNER_BY < gpu_check.PLANNER_STOP_AT <= gpu_check.TESTS_BY < gpu_check.SPEED_BY
    assert gpu_check.SPEED_BY + 10 <= 470 and "timeout 470" in gpu_check.__doc__ and 'carry [".whl"]' in gpu_check.__doc__
    # at least 20 configurations over five shapes from 135M to 7B, every method, checkpointing on and off
    cases = vram_accuracy.CHECK_CASES
    assert len(cases) >= 20
    assert {c["model"] for c in cases} == {"SmolLM2-135M", "Qwen2.5-0.5B", "Qwen2.5-1.5B", "Llama-3.2-3B", "Qwen2.5-7B"}
    assert {c["method"] for c in cases} == {"full", "lora", "qlora", "lora8bit", "dora"}
    assert {c["gradient_checkpointing"] for c in cases} == {True, False}


@pytest.mark.slow
def test_dry_run_runs_every_stage_on_the_cpu(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("OUT", None)
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--dry-run", "--out", str(out),
                           "--cache", str(tmp_path / "models")], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = (out / "summary.txt").read_text()
    assert done.stdout.rstrip().endswith(summary.rstrip())  # the summary comes last
    assert "CUDA tests: 0 passed, 0 failed" in summary and "needs a CUDA GPU" in summary

    planner = json.loads((out / "bench" / "results" / "vram_accuracy.json").read_text())
    assert planner["cases_planned"] == len(planner["records"]) == len(vram_accuracy.DRY_CHECK_CASES)
    for record in planner["records"]:  # measured by the studio's trainer and scored against the planner
        assert record["measured_allocated_bytes"] > 0 and "error_pct" in record, record
    assert {r["method"] for r in planner["records"]} == {"qlora", "lora8bit"}

    speed = json.loads((out / "bench" / "results" / "throughput.json").read_text())[0]
    assert speed["tokens_per_s_studio"] > 0 and speed["tokens_per_s_plain"] > 0
    assert speed["tokens_per_s_unsloth"] is None and "CUDA" in speed["detail_unsloth"]["error"]
    assert speed["device"] == planner["device"] == "cpu (gpu_check --dry-run)"


def test_summary_of_gpu_results_fits_one_screen():
    """The summary's GPU branches, which the dry run cannot reach: records scored as a GPU run scores them."""
    import throughput

    records = []
    for i, case in enumerate(vram_accuracy.CHECK_CASES[:3]):
        estimate = vram_accuracy.plan_estimate(case)
        measured = {"measured_bytes": int(estimate.reserved_bytes * (1.02, 1.1, 1.0)[i]),
                    "measured_allocated_bytes": int(estimate.reserved_bytes * 0.9)}
        records.append(vram_accuracy.score({"case": i, **case, **measured}, "cuda"))
    records.append(vram_accuracy.score({"case": 3, **vram_accuracy.CHECK_CASES[3],
                                        "skipped": "the time budget ran out first"}, "cuda"))
    planner = {"records": records, "summary": vram_accuracy.summarize(records), "cases_planned": 22,
               "compared": "torch.cuda.max_memory_reserved() vs the estimate's reserved_bytes"}
    speed = {"model": "Qwen2.5-1.5B", "method": "lora", "rank": 16, "lengths": "uniform 64..1024",
             "tokens_per_s_studio": 30000.0, "tokens_per_s_plain": 10000.0, "tokens_per_s_unsloth": 28000.0,
             "peak_reserved_studio": 4 * 2**30, "peak_reserved_plain": 10 * 2**30,
             "detail_plain_expandable": {"error": "not run: the time budget ran out first"}}
    throughput._ratios(speed)
    tests = {"passed": ["test_gpu::test_a"], "failed": [("test_gpu::test_b", "AssertionError: x")],
             "skipped": [("test_multi::test_c", "needs 2 GPUs")]}
    text = gpu_check.summary("NVIDIA H200", tests, None, planner, speed, {"total": 460.0}, dry_run=False)
    print(text)
    lines = text.splitlines()
    assert len(lines) <= 24 and max(map(len, lines)) <= 200
    assert "3 of 22 configurations" in text and "MISSES the target" in text  # -9.1 %: under by more than 5 %
    assert "speedup_vs_plain 3.00 (>= 2.5: ok)" in text and "speedup_vs_unsloth 1.07 (>= 1.0: ok)" in text
    assert "memory_vs_plain 0.40 (<= 0.5: ok)" in text
    assert "FAILED test_gpu::test_b" in text and "not measured: case 3" in text
