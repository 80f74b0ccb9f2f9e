"""How close is studio.plan's estimate to the real peak? Train a few steps with the studio's trainer and compare.

For each configuration below (random-init models of real published configs, 0.5B to 7B) it trains a few real
steps exactly as users train: studio.train.worker.load_model (bf16 weights without autocast, peft LoRA / DoRA
with fp32 adapters, bitsandbytes NF4 double-quant or 8-bit bases, the attention the trainer picks) and
studio.train.trainer.build_trainer (packed token-budget rows, or padded rows for the "masked" cases; the
chunked loss; the studio's checkpointing; the optimizer chosen), on examples that fill every batch (the
planner's worst case: batch_size x max_seq_len tokens, all of them trained). It records
torch.cuda.max_memory_reserved() beside the estimate's reserved_bytes. Each configuration runs in its own
process, so one peak never leaks into the next and an OOM stays contained.

    python bench/vram_accuracy.py              # all cases; writes bench/results/vram_accuracy.json
    python bench/vram_accuracy.py --cases 0-7  # some cases; merged into the existing results file
    python bench/vram_accuracy.py --dry-run    # print the cases and their estimates (no GPU needed)
    python bench/vram_accuracy.py --cpu        # the planner's tensor arithmetic checked on a CPU (below):
                                               # bench/results/vram_accuracy_cpu.json
    python bench/gpu_check.py                  # on the GPU machine: CHECK_CASES below, several per process,
                                               # within the check's 8-minute command (see its docstring)

Target (GPU): median absolute error <= 5 %, worst <= 10 %, never under-estimating by more than 5 %.
On a machine without CUDA it says so and writes nothing: results are only ever measured, never made up.

--cpu: without a GPU the same trainer runs smaller cases on the CPU inside torch.profiler(profile_memory=True),
which sees every allocation and free of PyTorch's CPU allocator in order. The tensors alive before training
(weights, adapters) plus the highest running total of those events is the peak of allocated tensor memory,
what torch.cuda.max_memory_allocated() reports on a GPU; it is compared with the estimate's allocated part
(reserved minus the allocator overhead). 4-bit and 8-bit bases are measured too: bitsandbytes quantizes and
trains on the CPU, with the same storage as on a GPU (packed NF4 codes with double-quantized constants; int8
with an fp32 scale per row), counted from each weight's quantization state, which is no parameter or buffer
of its own. Not checked this way: the caching allocator's overhead and the CUDA
context (CUDA-only), bitsandbytes' CUDA kernels' own temporaries, the varlen flash kernel (a CPU runs
packed rows through SDPA one example at a time and joins the outputs, one more copy of the attention output
per layer: about 3 % of a small LoRA run), and foreach AdamW (a CPU steps one tensor at a time, so full
fine-tuning's optimizer step needs less than the planner's CUDA figure).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "vram_accuracy.json"
RESULTS_CPU = ROOT / "bench" / "results" / "vram_accuracy_cpu.json"

from benchlib import random_checkpoint, select_cases, versions  # noqa: E402 - after the path setup
from studio.catalog import find  # noqa: E402

# The models' published shapes, from the studio's catalog (what the planner sizes them by). Mistral's config.json
# says sliding_window: null; transformers' default would be a 4096-token window, another attention path.
_CATALOG = {"Qwen2.5-0.5B": "Qwen/Qwen2.5-0.5B-Instruct", "Qwen2.5-1.5B": "Qwen/Qwen2.5-1.5B-Instruct",
            "Llama-3.2-3B": "meta-llama/Llama-3.2-3B-Instruct", "Qwen2.5-7B": "Qwen/Qwen2.5-7B-Instruct",
            "Mistral-7B-v0.3": "mistralai/Mistral-7B-Instruct-v0.3",
            "SmolLM2-135M": "embedded:SmolLM2-135M-Instruct"}  # the embedded default's shape, for --cpu
MODELS = {name: dict(find(model_id).config) for name, model_id in _CATALOG.items()}
MODELS["Mistral-7B-v0.3"]["sliding_window"] = None
# --quick only: small enough for a test on a CPU
MODELS["tiny-qwen2"] = dict(model_type="qwen2", hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=2, vocab_size=4096, tie_word_embeddings=True,
                            max_position_embeddings=2048, rope_theta=1000000.0, rms_norm_eps=1e-6)
MODELS["tiny-llama"] = dict(model_type="llama", hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                            num_attention_heads=4, num_key_value_heads=2, vocab_size=8192, tie_word_embeddings=True,
                            max_position_embeddings=2048, rms_norm_eps=1e-5)


def _case(model, method, seq, batch, ckpt, accum=1, optimizer="adamw_torch", masked=False, rank=16, **more):
    return dict(model=model, method=method, rank=rank, alpha=2 * rank, max_seq_len=seq, batch_size=batch,
                grad_accumulation=accum, gradient_checkpointing=ckpt, optimizer=optimizer, masked_attention=masked,
                **more)


CASES = [
    _case("Qwen2.5-0.5B", "full", 512, 4, False),
    _case("Qwen2.5-0.5B", "full", 2048, 2, True),
    _case("Qwen2.5-0.5B", "lora", 1024, 4, False),
    _case("Qwen2.5-0.5B", "lora", 1024, 4, False, masked=True),
    _case("Qwen2.5-0.5B", "lora", 4096, 1, True),
    _case("Qwen2.5-0.5B", "qlora", 2048, 2, False),
    _case("Qwen2.5-0.5B", "dora", 1024, 2, False),
    _case("Qwen2.5-0.5B", "lora8bit", 1024, 2, False),
    _case("Qwen2.5-1.5B", "full", 1024, 2, True),
    _case("Qwen2.5-1.5B", "full", 1024, 2, True, optimizer="adamw_8bit"),
    _case("Qwen2.5-1.5B", "lora", 2048, 2, False),
    _case("Qwen2.5-1.5B", "lora", 512, 8, False, accum=2),
    _case("Qwen2.5-1.5B", "qlora", 4096, 2, True),
    _case("Llama-3.2-3B", "full", 512, 1, True),
    _case("Llama-3.2-3B", "lora", 1024, 2, False),
    _case("Llama-3.2-3B", "lora", 4096, 2, True, masked=True),
    _case("Llama-3.2-3B", "qlora", 2048, 4, True, rank=64),
    _case("Qwen2.5-7B", "lora", 1024, 1, True),
    _case("Qwen2.5-7B", "lora", 4096, 1, True, masked=True),
    _case("Qwen2.5-7B", "qlora", 2048, 2, True),
    _case("Qwen2.5-7B", "qlora", 512, 4, False),
    _case("Mistral-7B-v0.3", "qlora", 1024, 2, True),
    _case("Mistral-7B-v0.3", "lora", 2048, 1, True),
    _case("Mistral-7B-v0.3", "full", 512, 1, True, optimizer="adamw_8bit"),
]
# Small enough for a 2-core CPU in a few minutes each; fp32 as the trainer runs on a CPU, and bf16 too.
# Without LoRA dropout: a CPU keeps each dropout mask in the input's dtype (4 bytes a value in fp32), a GPU in
# one byte, and that CPU-only difference (15 % of case 0 with dropout 0.05) would hide everything else.
def _cpu(*args, **kw):
    return _case(*args, dropout=0.0, **kw)


CPU_CASES = [
    _cpu("SmolLM2-135M", "lora", 512, 2, False, precision="fp32"),
    _cpu("SmolLM2-135M", "lora", 512, 2, True, precision="fp32"),
    _cpu("SmolLM2-135M", "lora", 512, 2, False, masked=True, precision="fp32"),
    _cpu("SmolLM2-135M", "lora", 512, 2, False, precision="bf16"),
    _cpu("SmolLM2-135M", "dora", 512, 2, False, precision="fp32"),
    _cpu("SmolLM2-135M", "full", 512, 2, False, precision="fp32"),
    _cpu("SmolLM2-135M", "lora", 256, 4, False, accum=2, precision="fp32"),
    _cpu("Qwen2.5-0.5B", "lora", 512, 2, False, precision="fp32"),
    _cpu("Qwen2.5-0.5B", "lora", 512, 2, False, precision="fp32", lean_loss=False),
    _cpu("Qwen2.5-0.5B", "lora", 1024, 1, True, precision="fp32"),  # bf16 on a CPU: case 3 (this one, 30+ min)
    _cpu("Qwen2.5-0.5B", "full", 256, 2, True, precision="fp32"),
    _cpu("SmolLM2-135M", "qlora", 512, 2, False, precision="fp32"),
    _cpu("SmolLM2-135M", "lora8bit", 512, 2, False, precision="fp32"),
    _cpu("SmolLM2-135M", "qlora", 512, 2, True, precision="fp32"),
    _cpu("Qwen2.5-0.5B", "qlora", 512, 2, False, precision="fp32"),
    _cpu("Qwen2.5-0.5B", "lora8bit", 256, 2, True, precision="fp32"),
]
QUICK_CASES = [_cpu("tiny-llama", "lora", 256, 2, False, precision="fp32"),
               _cpu("tiny-llama", "full", 256, 2, True, precision="fp32")]
# bench/gpu_check.py: five published shapes from 135M to 7B; every method, ranks 8..64, 512..4096 tokens,
# checkpointing on and off, padded and packed rows, three optimizers. One process per shape (each case loads
# its model afresh; the process only saves the imports), most telling cases of each shape first, so a check
# cut short by its time budget still covers every shape.
CHECK_CASES = [
    _case("Qwen2.5-7B", "qlora", 2048, 2, True),
    _case("Qwen2.5-7B", "lora", 1024, 1, True),
    _case("Qwen2.5-7B", "qlora", 512, 4, False, rank=8),
    _case("Qwen2.5-7B", "lora", 4096, 1, True, masked=True),
    _case("Llama-3.2-3B", "lora", 1024, 2, False),
    _case("Llama-3.2-3B", "qlora", 2048, 4, True, rank=64),
    _case("Llama-3.2-3B", "lora8bit", 1024, 2, True),
    _case("Llama-3.2-3B", "full", 512, 1, True, optimizer="adamw_8bit"),
    _case("Qwen2.5-1.5B", "lora", 2048, 2, False),
    _case("Qwen2.5-1.5B", "qlora", 4096, 2, True),
    _case("Qwen2.5-1.5B", "dora", 1024, 2, True),
    _case("Qwen2.5-1.5B", "lora", 512, 8, False, accum=2, optimizer="paged_adamw_8bit"),
    _case("Qwen2.5-0.5B", "full", 1024, 2, True),
    _case("Qwen2.5-0.5B", "lora", 1024, 4, False, masked=True),
    _case("Qwen2.5-0.5B", "lora8bit", 1024, 2, False),
    _case("Qwen2.5-0.5B", "lora", 4096, 1, True, rank=64),
    _case("SmolLM2-135M", "full", 1024, 4, False),
    _case("SmolLM2-135M", "lora", 2048, 4, False),
    _case("SmolLM2-135M", "qlora", 1024, 4, True),
    _case("SmolLM2-135M", "dora", 512, 4, False),
    _case("SmolLM2-135M", "lora8bit", 512, 4, False, optimizer="adamw_8bit"),
    _case("SmolLM2-135M", "lora", 1024, 2, True, accum=4),
]
# --dry-run of the check: the same code on the CPU, two tiny shapes (two lanes), quantized bases
DRY_CHECK_CASES = [_cpu("tiny-llama", "qlora", 128, 2, True, precision="fp32"),
                   _cpu("tiny-qwen2", "lora8bit", 128, 2, False, precision="fp32")]
STEPS = 3  # optimizer steps: the first creates the optimizer state, later ones show the steady peak
CPU_STEPS = 2


def studio_project(case: dict, device: str):
    """The project a user would have made for this case."""
    from studio.project import Project
    p = Project(name="vram-accuracy")
    m, t = p.method, p.train
    m.method, m.rank, m.alpha, m.dropout = case["method"], case["rank"], case["alpha"], case.get("dropout", 0.05)
    t.batch_size, t.max_seq_len, t.grad_accumulation = case["batch_size"], case["max_seq_len"], case["grad_accumulation"]
    t.gradient_checkpointing, t.optimizer = case["gradient_checkpointing"], case["optimizer"]
    t.packing = not case["masked_attention"]  # padded rows carry a mask; packed rows do not
    t.lean_loss = case.get("lean_loss", True)
    t.precision = case.get("precision") or ("bf16" if device == "cuda" else "fp32")
    t.warmup_ratio = 0.0
    p.validate()
    return p


def plan_estimate(case: dict, device: str = "cuda"):
    from studio.plan import PlanSettings, estimate
    return estimate(MODELS[case["model"]], PlanSettings.from_project(studio_project(case, device)))


def allocated_part(est) -> int:
    """The estimate without what only a CUDA caching allocator adds: comparable to allocated tensor bytes."""
    return est.reserved_bytes - est.breakdown["allocator"]


def full_examples(case: dict, vocab: int, steps: int):
    """Examples that fill every batch: max_seq_len tokens each, every one trained. Masked (padded) cases
    shorten every other example by 8 tokens, so each padded batch carries a real padding mask."""
    import random
    from studio.data.tokenize import Example
    rng = random.Random(0)
    T = case["max_seq_len"]
    out = []
    for i in range(case["batch_size"] * case["grad_accumulation"] * steps):
        n = T - 8 if case["masked_attention"] and i % 2 else T
        ids = [rng.randrange(3, vocab) for _ in range(n)]
        out.append(Example(ids, list(ids)))
    return out


# --- one configuration, in its own process -----------------------------------------------------------------

def run_one(case: dict, cache: Path, device: str) -> dict:
    import torch
    from transformers import TrainerCallback

    from studio.train.trainer import build_trainer
    from studio.train.worker import load_model

    project = studio_project(case, device)
    precision = project.train.precision
    folder = random_checkpoint(MODELS[case["model"]], cache / case["model"], device)
    model = load_model(project, folder, device, precision)
    steps = STEPS if device == "cuda" else CPU_STEPS
    examples = full_examples(case, MODELS[case["model"]]["vocab_size"], steps)
    out = Path(tempfile.mkdtemp(prefix="vram-"))
    trainer, _ = build_trainer(project, model, examples, [], 0, device, precision, out, steps=steps)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    facts = {"attention": base.config._attn_implementation, "packing": project.train.packing,
             "lean_loss": trainer.lean is not None, "steps": steps}
    if device == "cuda":
        class ResetPeak(TrainerCallback):  # loading (and quantizing) is not training memory
            def on_train_begin(self, args, state, control, **kw):
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()

        trainer.add_callback(ResetPeak())
        trainer.train()
        torch.cuda.synchronize()
        used = _process_gpu_bytes()
        return {**facts, "measured_bytes": int(torch.cuda.max_memory_reserved()),
                "measured_allocated_bytes": int(torch.cuda.max_memory_allocated()),
                # what the driver holds for this process beyond PyTorch's pool
                "cuda_context_bytes": used - torch.cuda.memory_reserved() if used else None}
    return {**facts, "measured_allocated_bytes": _cpu_peak_allocated(model, trainer)}


def _process_gpu_bytes() -> int | None:
    """GPU memory the driver gives this process (NVML), or None where NVML cannot tell: other processes
    (the check runs several at once) must not count, as they would in the card's used memory."""
    try:
        import pynvml
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        used = {p.pid: p.usedGpuMemory for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle)}
        return int(used[os.getpid()]) if used.get(os.getpid()) else None
    except Exception:  # noqa: BLE001 - no NVML, another PID namespace: leave the context unmeasured
        return None


def _weight_tensors(model) -> list:
    """Every tensor that holds the model before training: parameters and buffers, and the constants of
    bitsandbytes' quantized weights (absmax, codebooks, row scales), which hang off the weights as attributes."""
    import torch
    tensors = [*model.parameters(), *model.buffers()]
    for param in list(tensors):
        state = getattr(param, "quant_state", None)
        while state is not None:  # double quantization nests a second state for the absmax values
            tensors += [t for t in (state.absmax, state.code, state.offset) if isinstance(t, torch.Tensor)]
            state = state.state2
        tensors += [t for t in (getattr(param, "SCB", None), getattr(param, "CB", None)) if isinstance(t, torch.Tensor)]
    return tensors


def _cpu_peak_allocated(model, trainer) -> int:
    """Peak bytes of live tensors while training on the CPU: those alive before (weights, adapters) plus the
    highest running total of the CPU allocator's events, which the profiler reports after each one. The total
    counts from the process's first profiled allocation, and forgets nothing freed while no profiler runs, so
    it is taken relative to where it stood when this training began (an earlier case in the same process
    would otherwise add its own tensors)."""
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    storages = {}
    for tensor in _weight_tensors(model):
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        trainer.train()
    events = []  # (time, bytes allocated (+) or freed (-), running total after it)
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        if node.tag == _EventType.Allocation:
            fields = node.extra_fields
            events.append((node.start_time_ns, fields.alloc_size, fields.total_allocated))
    if not events:
        return sum(storages.values())
    _, first_size, first_total = min(events)
    start = first_total - first_size
    return sum(storages.values()) + max(total for _, _, total in events) - start


# --- the driver ------------------------------------------------------------------------------------------

CASE_KEYS = ("model", "method", "rank", "alpha", "dropout", "max_seq_len", "batch_size", "grad_accumulation",
             "gradient_checkpointing", "optimizer", "masked_attention", "precision", "lean_loss")


def measure(i: int, case: dict, device: str, cache: str) -> dict:
    """Run one case in its own process; the record holds the measurement, the estimate and the error."""
    # the allocator setting the studio's worker starts training with (studio.train.worker)
    env = {"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True", **os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, __file__, "--one", json.dumps(case), "--cache", cache, "--device", device],
                          capture_output=True, text=True, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    record = {"case": i, **case}
    if lines:
        record.update(json.loads(lines[-1][len("RESULT "):]))
        # when, and with which libraries: a results file gathers cases measured on different days
        record["measured"] = {"date": datetime.date.today().isoformat(),
                              **versions("transformers", "peft", "bitsandbytes")}
    else:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        record.update(error=" | ".join(tail), oom="OutOfMemoryError" in (proc.stderr or ""))
    return score(record, device)


def run_group(jobs: list, cache: Path, device: str, deadline: float) -> None:
    """Several cases ([index, case] pairs) in this process, one after another, each loading its model afresh
    and leaving nothing behind (checked: allocated_before_bytes); a RESULT line per case as it finishes. A case
    that would start after `deadline` (time.time()) is reported as skipped."""
    import gc

    import torch
    for index, case in jobs:
        if time.time() > deadline:
            print("RESULT " + json.dumps({"case": index, "skipped": "the time budget ran out first"}), flush=True)
            continue
        before = torch.cuda.memory_allocated() if device == "cuda" else None
        try:
            result = run_one(case, cache, device)
        except torch.OutOfMemoryError as exc:
            result = {"error": "OutOfMemoryError: " + str(exc).splitlines()[0], "oom": True}
        except Exception as exc:  # noqa: BLE001 - one broken case must not cost the others
            result = {"error": f"{type(exc).__name__}: {exc}"[:400]}
        gc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()
            result["allocated_before_bytes"] = before
        print("RESULT " + json.dumps({"case": index, **result}), flush=True)


def measure_group(jobs: list, device: str, cache: str, deadline: float, timeout: float, on_record=None) -> list[dict]:
    """Run run_group in its own process, stopped after `timeout` s; a scored record per case, in order, each also
    handed to on_record as soon as it is measured. Past `deadline` no process starts: all are skipped."""
    import threading
    records: dict[int, dict] = {}

    def finish(index: int, case: dict, result: dict) -> None:
        records[index] = score({"case": index, **case, **result}, device)
        if on_record:
            on_record(records[index])

    cases = dict((index, case) for index, case in jobs)
    if time.time() > deadline:
        for index, case in jobs:
            finish(index, case, {"skipped": "the time budget ran out first"})
        return [records[index] for index, _ in jobs]
    env = {"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True", **os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, __file__, "--group", json.dumps(jobs), "--cache", cache, "--device", device,
           "--deadline", str(deadline)]
    errors = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors, text=True, env=env)
    stopped = threading.Event()

    def stop() -> None:
        stopped.set()
        proc.kill()

    timer = threading.Timer(max(1.0, timeout), stop)
    timer.start()
    try:
        for line in proc.stdout:
            if line.startswith("RESULT "):
                result = json.loads(line[len("RESULT "):])
                index = result.pop("case")
                finish(index, cases[index], result)
        proc.wait()
    finally:
        timer.cancel()
    errors.seek(0)
    tail = [ln for ln in errors.read().strip().splitlines() if ln.strip()][-3:]
    errors.close()
    why = (f"stopped at the time limit ({timeout:.0f} s) before this case" if stopped.is_set()
           else " | ".join(tail) or f"the process ended (exit code {proc.returncode}) before this case")
    for index, case in jobs:
        if index not in records:
            finish(index, case, {"error": why})
    return [records[index] for index, _ in jobs]


def score(record: dict, device: str) -> dict:
    """(Re)compute the planner's estimate for a record's case and its error against what was measured:
    after the planner changes, --rescore updates the results without training again."""
    est = plan_estimate({k: record[k] for k in CASE_KEYS if k in record}, device)
    record.update(estimate_bytes=est.reserved_bytes, estimate_total_bytes=est.total_bytes,
                  estimate_allocated_bytes=allocated_part(est), estimate_breakdown=est.breakdown,
                  estimate_peak_phase=est.peak_phase)
    if "measured_allocated_bytes" not in record:
        return record
    # on a GPU: reserved vs reserved (the measure); on a CPU: allocated tensors vs allocated tensors
    estimated, measured = ((record["estimate_bytes"], record["measured_bytes"]) if device == "cuda" else
                           (record["estimate_allocated_bytes"], record["measured_allocated_bytes"]))
    record["error_pct"] = round(100 * (estimated - measured) / measured, 2)
    if device == "cuda":
        record["allocated_error_pct"] = round(100 * (record["estimate_allocated_bytes"]
                                                     - record["measured_allocated_bytes"])
                                              / record["measured_allocated_bytes"], 2)
    return record


def summarize(records: list[dict]) -> dict:
    done = [r for r in records if "error_pct" in r]
    if not done:
        return {}
    errors = [abs(r["error_pct"]) for r in done]
    summary = {"cases_measured": len(done), "median_abs_error_pct": round(statistics.median(errors), 2),
               "worst_abs_error_pct": round(max(errors), 2),
               "worst_underestimate_pct": round(min(0.0, min(r["error_pct"] for r in done)), 2)}
    summary["meets_target"] = (summary["median_abs_error_pct"] <= 5 and summary["worst_abs_error_pct"] <= 10
                               and summary["worst_underestimate_pct"] >= -5)
    return summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", help="which cases, e.g. 0-7,12 (default: all)")
    ap.add_argument("--dry-run", action="store_true", help="print cases and estimates; no GPU needed")
    ap.add_argument("--cpu", action="store_true", help="check the tensor arithmetic on this CPU (CPU_CASES)")
    ap.add_argument("--quick", action="store_true", help="--cpu on a tiny model (the tests run it); writes only "
                    "to --out (default: a temporary file), never the results")
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)  # with --quick
    ap.add_argument("--rescore", action="store_true", help="recompute the estimates of the results file's records "
                    "with the planner as it is now (after tuning it); measures nothing")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one case (JSON) and print its result
    ap.add_argument("--group", help=argparse.SUPPRESS)  # internal: run [index, case] pairs (JSON), see run_group
    ap.add_argument("--deadline", type=float, default=float("inf"), help=argparse.SUPPRESS)  # with --group
    ap.add_argument("--device", default="cuda", help=argparse.SUPPRESS)  # internal, with --one
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "ftstudio-vram-bench"))
    args = ap.parse_args()
    if args.one:
        print("RESULT " + json.dumps(run_one(json.loads(args.one), Path(args.cache), args.device)))
        return 0
    if args.group:
        run_group(json.loads(args.group), Path(args.cache), args.device, args.deadline)
        return 0
    device = "cpu" if args.cpu or args.quick else "cuda"
    cases = QUICK_CASES if args.quick else CPU_CASES if args.cpu else CASES
    chosen = select_cases(args.cases, len(cases))
    if args.dry_run:
        for i in chosen:
            e = plan_estimate(cases[i], device)
            print(f"{i:2d} {json.dumps(cases[i])}  estimate {e.reserved_bytes / 2**30:.2f} GiB reserved, "
                  f"{allocated_part(e) / 2**30:.2f} GiB allocated ({e.peak_phase})")
        return 0
    results = (args.out or Path(tempfile.gettempdir()) / "vram-quick.json") if args.quick else (
        RESULTS_CPU if args.cpu else RESULTS)
    if args.rescore:
        saved = json.loads(results.read_text(encoding="utf-8"))
        records = {r["case"]: score(r, device) for r in saved["records"]}
        _save(results, device, saved["device"], records, saved)
        print(json.dumps(summarize(list(records.values())), indent=2))
        return 0
    import torch
    if device == "cuda" and not torch.cuda.is_available():
        print("vram_accuracy: no CUDA GPU on this machine, so there is nothing to measure; skipped "
              "(no results file written). Run it on a machine with an NVIDIA GPU, or try --cpu.")
        return 0
    device_name = torch.cuda.get_device_name(0) if device == "cuda" else f"cpu ({os.cpu_count()} cores)"
    records = {}
    if results.is_file():  # merge with earlier partial runs on the same device
        old = json.loads(results.read_text(encoding="utf-8"))
        if old.get("device") == device_name:
            records = {r["case"]: r for r in old.get("records", [])}
    for i in chosen:
        case = cases[i]
        record = records[i] = measure(i, case, device, args.cache)
        what, estimated, measured = (("reserved", "estimate_bytes", "measured_bytes") if device == "cuda" else
                                     ("allocated", "estimate_allocated_bytes", "measured_allocated_bytes"))
        shown = (f"estimate {record[estimated] / 2**30:6.2f} GiB, measured {record[measured] / 2**30:6.2f} GiB "
                 f"({record['error_pct']:+.1f} %)" if "error_pct" in record else f"failed: {record['error']}")
        print(f"{i:2d} {case['model']:<16} {case['method']:<8} seq {case['max_seq_len']:<5} batch "
              f"{case['batch_size']} ckpt {int(case['gradient_checkpointing'])} {what}: {shown}", flush=True)
        _save(results, device, device_name, records)
    summary = summarize(list(records.values()))
    print(json.dumps(summary, indent=2))
    return 0


def _save(results: Path, device: str, device_name: str, records: dict, measured_with: dict | None = None) -> None:
    """After every case, so a command cut off at its time limit keeps what it measured. A rescore keeps the
    versions, date and memory of the run that measured (measured_with) and adds when it was rescored."""
    import torch
    out = {"device": device_name, "compared": ("torch.cuda.max_memory_reserved() vs the estimate's reserved_bytes"
                                               if device == "cuda" else
                                               "peak allocated CPU tensor bytes vs the estimate's allocated part"),
           "versions": versions("torch", "transformers", "peft", "bitsandbytes"), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "steps": STEPS if device == "cuda" else CPU_STEPS, "summary": summarize(list(records.values())),
           "records": [records[k] for k in sorted(records)]}
    if measured_with:
        out.update({k: measured_with[k] for k in ("versions", "date", "total_memory_bytes") if k in measured_with})
        out["rescored"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    elif device == "cuda":
        out["total_memory_bytes"] = torch.cuda.mem_get_info()[1]
    results.parent.mkdir(parents=True, exist_ok=True)
    tmp = results.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(out, indent=2), encoding="utf-8")
    tmp.replace(results)


if __name__ == "__main__":
    sys.exit(main())
