"""How close is studio.plan's estimate to the real peak? Train a few steps on a CUDA GPU and compare.

For each configuration below (random-init models of real published configs, 0.5B to 7B) it trains a few real
steps the way the studio's trainer does (bf16 weights without autocast, SDPA attention, peft LoRA / DoRA with
fp32 adapters, bitsandbytes NF4 double-quant or 8-bit bases, torch AdamW, the loss transformers computes over
the full logits) and records torch.cuda.max_memory_reserved() beside the estimate's reserved_bytes. Each
configuration runs in its own process, so one peak never leaks into the next and an OOM stays contained.

    python bench/vram_accuracy.py              # all cases; writes bench/results/vram_accuracy.json
    python bench/vram_accuracy.py --cases 0-7  # some cases; merged into the existing results file
    python bench/vram_accuracy.py --dry-run    # print the cases and their estimates (no GPU needed)

Target: median absolute error <= 5 %, worst <= 10 %, never under-estimating by more than 5 %.
On a machine without CUDA it says so and writes nothing: results are only ever measured, never made up.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "vram_accuracy.json"

# Published config.json values (only the keys that shape the model).
MODELS = {
    "Qwen2.5-0.5B": dict(model_type="qwen2", hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                         num_attention_heads=14, num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True,
                         max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6),
    "Qwen2.5-1.5B": dict(model_type="qwen2", hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                         num_attention_heads=12, num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True,
                         max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6),
    "Llama-3.2-3B": dict(model_type="llama", hidden_size=3072, intermediate_size=8192, num_hidden_layers=28,
                         num_attention_heads=24, num_key_value_heads=8, head_dim=128, vocab_size=128256,
                         tie_word_embeddings=True, max_position_embeddings=131072, rope_theta=500000.0,
                         rms_norm_eps=1e-5, bos_token_id=128000, eos_token_id=128001,
                         rope_scaling={"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                                       "original_max_position_embeddings": 8192, "rope_type": "llama3"}),
    "Qwen2.5-7B": dict(model_type="qwen2", hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                       num_attention_heads=28, num_key_value_heads=4, vocab_size=152064, tie_word_embeddings=False,
                       max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6),
    "Mistral-7B-v0.3": dict(model_type="mistral", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                            num_attention_heads=32, num_key_value_heads=8, vocab_size=32768,
                            tie_word_embeddings=False, max_position_embeddings=32768, rope_theta=1000000.0,
                            rms_norm_eps=1e-5, sliding_window=None),
}


def _case(model, method, seq, batch, ckpt, accum=1, optimizer="adamw_torch", masked=False, rank=16):
    return dict(model=model, method=method, rank=rank, alpha=2 * rank, max_seq_len=seq, batch_size=batch,
                grad_accumulation=accum, gradient_checkpointing=ckpt, optimizer=optimizer, masked_attention=masked)


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
STEPS = 3  # optimizer steps: the first creates the optimizer state, later ones show the steady peak


def plan_estimate(case: dict):
    from studio.plan import PlanSettings, estimate
    keys = {k: v for k, v in case.items() if k != "model"}
    # run_one computes transformers' own full-logit loss, not the trainer's chunked one
    return estimate(MODELS[case["model"]], PlanSettings(**keys, lean_loss=False))


# --- one configuration, in its own process -----------------------------------------------------------------

def run_one(case: dict, cache: Path) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(**MODELS[case["model"]])
    config.use_cache = False
    method = case["method"]
    if method in ("qlora", "lora8bit"):
        from transformers import BitsAndBytesConfig
        folder = _random_checkpoint(case["model"], config, cache)
        quant = (BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                    bnb_4bit_compute_dtype=torch.bfloat16) if method == "qlora"
                 else BitsAndBytesConfig(load_in_8bit=True))
        model = AutoModelForCausalLM.from_pretrained(folder, quantization_config=quant, dtype=torch.bfloat16,
                                                     device_map={"": 0}, attn_implementation="sdpa")
    else:
        with torch.device("cuda"):
            model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16, attn_implementation="sdpa")
    model.config.use_cache = False
    if case["gradient_checkpointing"]:
        model.gradient_checkpointing_enable()  # transformers' default: non-reentrant
    if method != "full":
        model = get_peft_model(model, LoraConfig(r=case["rank"], lora_alpha=case["alpha"], lora_dropout=0.05,
                                                 target_modules="all-linear", use_dora=method == "dora",
                                                 task_type="CAUSAL_LM"))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    if case["optimizer"] == "adamw_8bit":
        import bitsandbytes as bnb
        optimizer = bnb.optim.AdamW8bit(params, lr=1e-5)
    else:
        optimizer = torch.optim.AdamW(params, lr=1e-5)

    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    B, T = case["batch_size"], case["max_seq_len"]
    vocab = config.vocab_size
    for _ in range(STEPS):
        for _ in range(case["grad_accumulation"]):
            ids = torch.randint(0, vocab, (B, T), device="cuda")
            labels = ids.clone()
            mask = None
            if case["masked_attention"]:  # a padded row, as real batches have: SDPA gets a mask
                mask = torch.ones(B, T, dtype=torch.long, device="cuda")
                mask[0, -8:] = 0
                labels[0, -8:] = -100
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            (loss / case["grad_accumulation"]).backward()
            del loss
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    free, total = torch.cuda.mem_get_info()
    reserved_now = torch.cuda.memory_reserved()
    return {"measured_bytes": int(torch.cuda.max_memory_reserved()),
            "measured_allocated_bytes": int(torch.cuda.max_memory_allocated()),
            # what the driver holds for this process beyond PyTorch's pool (other processes would count too)
            "cuda_context_bytes": int(total - free - reserved_now)}


def _random_checkpoint(name: str, config, cache: Path) -> str:
    """A random-init model saved once, so bitsandbytes can quantize it the way from_pretrained does."""
    import torch
    from transformers import AutoModelForCausalLM

    folder = cache / name
    if not (folder / "config.json").is_file():
        with torch.device("cuda"):
            model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
        model.save_pretrained(folder)
        del model
        torch.cuda.empty_cache()
    return str(folder)


# --- the driver ------------------------------------------------------------------------------------------

def _select(spec: str | None) -> list[int]:
    if not spec:
        return list(range(len(CASES)))
    chosen = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        chosen.extend(range(int(lo), int(hi or lo) + 1))
    return [i for i in chosen if 0 <= i < len(CASES)]


def _versions() -> dict:
    import importlib.metadata as md
    out = {"python": sys.version.split()[0]}
    for pkg in ("torch", "transformers", "peft", "bitsandbytes"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", help="which cases, e.g. 0-7,12 (default: all)")
    ap.add_argument("--dry-run", action="store_true", help="print cases and estimates; no GPU needed")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one case (JSON) and print its result
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "ftstudio-vram-bench"))
    args = ap.parse_args()
    if args.one:
        print("RESULT " + json.dumps(run_one(json.loads(args.one), Path(args.cache))))
        return 0
    chosen = _select(args.cases)
    if args.dry_run:
        for i in chosen:
            e = plan_estimate(CASES[i])
            print(f"{i:2d} {json.dumps(CASES[i])}  estimate {e.reserved_bytes / 2**30:.2f} GiB ({e.peak_phase})")
        return 0
    import torch
    if not torch.cuda.is_available():
        print("vram_accuracy: no CUDA GPU on this machine, so there is nothing to measure; skipped "
              "(no results file written). Run it on a machine with an NVIDIA GPU.")
        return 0
    records = {}
    if RESULTS.is_file():  # merge with earlier partial runs on the same device
        old = json.loads(RESULTS.read_text(encoding="utf-8"))
        if old.get("device") == torch.cuda.get_device_name(0):
            records = {r["case"]: r for r in old.get("records", [])}
    for i in chosen:
        case = CASES[i]
        est = plan_estimate(case)
        proc = subprocess.run([sys.executable, __file__, "--one", json.dumps(case), "--cache", args.cache],
                              capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        record = {"case": i, **case, "estimate_bytes": est.reserved_bytes, "estimate_total_bytes": est.total_bytes,
                  "estimate_breakdown": est.breakdown, "estimate_peak_phase": est.peak_phase}
        if lines:
            measured = json.loads(lines[-1][len("RESULT "):])
            record.update(measured)
            record["error_pct"] = round(100 * (est.reserved_bytes - measured["measured_bytes"])
                                        / measured["measured_bytes"], 2)
        else:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            record["error"] = " | ".join(tail)
            record["oom"] = "OutOfMemoryError" in (proc.stderr or "")
        records[i] = record
        print(f"{i:2d} {case['model']:<16} {case['method']:<8} seq {case['max_seq_len']:<5} batch "
              f"{case['batch_size']} ckpt {int(case['gradient_checkpointing'])}: estimate "
              f"{est.reserved_bytes / 2**30:6.2f} GiB, measured "
              + (f"{record['measured_bytes'] / 2**30:6.2f} GiB ({record['error_pct']:+.1f} %)" if "measured_bytes"
                 in record else f"failed: {record['error']}"), flush=True)
    done = [r for r in records.values() if "error_pct" in r]
    errors = [abs(r["error_pct"]) for r in done]
    summary = {}
    if errors:
        summary = {"cases_measured": len(done), "median_abs_error_pct": round(statistics.median(errors), 2),
                   "worst_abs_error_pct": round(max(errors), 2),
                   "worst_underestimate_pct": round(min(0.0, min(r["error_pct"] for r in done)), 2)}
        summary["meets_target"] = (summary["median_abs_error_pct"] <= 5 and summary["worst_abs_error_pct"] <= 10
                                   and summary["worst_underestimate_pct"] >= -5)
    out = {"device": torch.cuda.get_device_name(0), "total_memory_bytes": torch.cuda.mem_get_info()[1],
           "versions": _versions(), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "steps": STEPS, "summary": summary, "records": [records[k] for k in sorted(records)]}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(out, indent=2), encoding="utf-8")
    tmp.replace(RESULTS)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
