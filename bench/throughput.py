"""Training speed and memory, side by side on one GPU: the studio's trainer vs the plain recipe vs Unsloth.

Every configuration trains the same random-init model (a real published config, saved once so every recipe
starts from the same weights) on the same synthetic chat-like data: lengths drawn uniformly from 64..1024
(seeded), the first quarter of each example a prompt without loss, the rest answer tokens. Same method, rank
(16, alpha 32, dropout 0, all 7 projections), learning rate and number of optimizer steps for every recipe:

  studio            studio.train.trainer.build_trainer + studio.train.worker.load_model, exactly what users
                    run: packed token-budget batches (batch_size x max_seq_len tokens), chunked loss,
                    varlen attention when it checks out, expandable segments, gradient checkpointing on
                    (the memory-lean setting, as Unsloth checkpoints too)
  studio_nockpt     the same without gradient checkpointing (what the studio runs when memory allows)
  plain             transformers Trainer + peft, `batch_size` examples padded to the longest, transformers'
                    loss over the full logits, SDPA; PYTORCH_CUDA_ALLOC_CONF unset
  plain_expandable  the same with expandable_segments:True (what Unsloth sets when imported)
  unsloth           FastLanguageModel + its LoRA (gradient checkpointing "unsloth"), the Trainer and the same
                    padded batches; null with the reason when unsloth cannot be imported

Each recipe runs in its own process (allocator settings must be fixed before CUDA starts, and a peak or an
OOM must not leak into the next). Measured after WARMUP steps, with torch.cuda.synchronize() around the timed
steps: real (non-padding) tokens per second, torch.cuda.max_memory_reserved() over the training (bytes), the
last logged training loss, and the loss on 16 held-out examples after training (the same for every recipe).
The studio's records also carry the memory planner's estimate for the same settings (estimate_reserved_*).

    python bench/throughput.py --list                 # the configurations
    python bench/throughput.py --cases 0-1            # run some; merged into bench/results/throughput.json
    python bench/throughput.py --cases 4 --recipes studio,plain   # part of one configuration, merged too
    python bench/throughput.py --quick                # tiny CPU smoke test of the whole script; writes only
                                                      # to --out (default: a temporary file), never results
    python bench/throughput.py --cpu                  # the CPU comparison (studio vs plain, SmolLM2-135M shape):
                                                      # bench/results/throughput_cpu.json. Not the GPU target:
                                                      # no Unsloth, no CUDA memory; peak RSS of each process instead

On the GPU machine (see shared/GPU.md), with the Unsloth wheel set (which has bitsandbytes) and this project's
two small pure-Python dependencies the machine lacks, prepared once here:

    /work/shared/bench/unsloth_wheels.sh .whl2
    python3 -m pip download -q --no-deps --only-binary=:all: -d .whl3 tomli_w platformdirs
    grep -qx /.whl3/ .git/info/exclude || echo /.whl3/ >> .git/info/exclude

each device command (carry .whl2 and .whl3; the results file travels with the working tree, so slices merge):

    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl2/*.whl .whl3/*.whl \
      && export PYTHONPATH=/tmp/site:$PWD; python3 -m pytest -q tests/test_packing.py -k cuda; \
      python3 bench/throughput.py --cases 0-1; cp bench/results/throughput.json $OUT/

then copy the returned throughput.json into bench/results/. One or two configurations fit in a 10-minute
command (a 7B one: one, or split it with --recipes). Without CUDA (and without --quick) it says so and
writes nothing: results are measured, never made up.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "throughput.json"
RESULTS_CPU = ROOT / "bench" / "results" / "throughput_cpu.json"

from benchlib import random_checkpoint, select_cases, versions  # noqa: E402 - after the path setup
from studio.catalog import find  # noqa: E402

# The catalog holds each model's published shape; a random-init model of that shape is all the benchmark needs.
MODELS = {name: dict(find(f"Qwen/{name}-Instruct").config) for name in ("Qwen2.5-0.5B", "Qwen2.5-1.5B", "Qwen2.5-7B")}
MODELS["SmolLM2-135M"] = dict(find("HuggingFaceTB/SmolLM2-135M-Instruct").config)
MODELS.update({
    # --quick only: small enough for a CPU
    "tiny-qwen2": dict(model_type="qwen2", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, vocab_size=4096, tie_word_embeddings=True,
                       max_position_embeddings=2048, rope_theta=1000000.0, rms_norm_eps=1e-6),
})
PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
RECIPES = ("studio", "studio_nockpt", "plain", "plain_expandable", "unsloth")
TOKEN_IDS = 4000  # data uses token ids below this: every recipe learns the same small unigram first
WARMUP, STEPS = 2, 10


def _case(model, method, batch=4, seq=1024):
    return dict(model=model, method=method, rank=16, alpha=32, dropout=0.0, batch_size=batch, max_seq_len=seq,
                min_len=64, max_len=seq, learning_rate=2e-4, warmup_steps=WARMUP, timed_steps=STEPS, seed=0)


CASES = [_case(m, method) for m in ("Qwen2.5-0.5B", "Qwen2.5-1.5B", "Qwen2.5-7B") for method in ("lora", "qlora")]
# On a CPU: what a user without a GPU trains (the embedded default's shape), lengths 32..512, fp32.
CPU_CASES = [dict(_case("SmolLM2-135M", "lora", batch=4, seq=512), min_len=32, warmup_steps=1, timed_steps=5)]
CPU_RECIPES = ("studio", "studio_nockpt", "plain")  # Unsloth needs CUDA; allocator settings are CUDA-only
QUICK_CASE = dict(_case("tiny-qwen2", "lora", batch=2, seq=128), min_len=16, warmup_steps=1, timed_steps=2)


# --- the shared inputs ---------------------------------------------------------------------------------------

def make_examples(case: dict, count: int):
    """Chat-like examples: a repeated motif (learnable), the first quarter masked as the prompt."""
    from studio.data.tokenize import IGNORE, Example
    rng = random.Random(case["seed"])
    out = []
    for _ in range(count):
        n = rng.randint(case["min_len"], case["max_len"])
        motif = [rng.randrange(3, TOKEN_IDS) for _ in range(rng.randint(4, 32))]
        ids = (motif * (n // len(motif) + 1))[:n]
        out.append(Example(ids, [IGNORE if i < n // 4 else t for i, t in enumerate(ids)]))
    return out


def ensure_model(name: str, cache: Path, device: str) -> Path:
    """A random-init checkpoint of `name` with a small tokenizer (Unsloth loads one), saved once and shared by
    every recipe."""
    def save_tokenizer(folder: Path) -> None:
        from tokenizers import Tokenizer, models, pre_tokenizers
        from transformers import PreTrainedTokenizerFast

        words = ["<|endoftext|>", "<|pad|>", "<unk>"] + [f"w{i}" for i in range(TOKEN_IDS - 3)]
        tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|pad|>",
                                unk_token="<unk>").save_pretrained(folder)

    return random_checkpoint(MODELS[name], cache / name, device, save_tokenizer)


class CountingCollator:
    """Wraps a collator and remembers the real (non-padding) tokens of each batch it makes, in order."""

    def __init__(self, inner):
        self.inner = inner
        self.tokens: list[int] = []

    def __call__(self, features):
        batch = self.inner(features)
        mask = batch.get("attention_mask")
        self.tokens.append(int(mask.sum()) if mask is not None else int(batch["input_ids"].numel()))
        return batch


def _timer(device: str):
    import torch
    from transformers import TrainerCallback

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    class Timer(TrainerCallback):
        def __init__(self):
            self.ends: list[float] = []

        def on_train_begin(self, args, state, control, **kw):
            sync()
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()  # loading (and quantizing) is not training memory
            self.ends.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kw):
            sync()
            self.ends.append(time.perf_counter())

    return Timer()


def _training_args(case: dict, out: Path, device: str, precision: str, packed: bool):
    from transformers import TrainingArguments
    return TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=1 if packed else case["batch_size"],
        max_steps=case["warmup_steps"] + case["timed_steps"], learning_rate=case["learning_rate"],
        lr_scheduler_type="constant", logging_steps=1, save_strategy="no", eval_strategy="no", report_to=[],
        bf16=precision == "bf16", remove_unused_columns=False, dataloader_num_workers=0, seed=case["seed"],
        use_cpu=device == "cpu", disable_tqdm=True)


# --- one recipe, in its own process ------------------------------------------------------------------------

def run_recipe(recipe: str, case: dict, folder: Path, device: str) -> dict:
    if recipe == "unsloth":
        import importlib.util
        if device != "cuda":
            return {"error": "unsloth needs a CUDA GPU"}
        if importlib.util.find_spec("unsloth") is None:
            return {"error": "unsloth is not installed here (see shared/GPU.md for carrying it)"}
        import unsloth  # noqa: F401 - it patches transformers, so it must come first
    import torch

    precision = "bf16" if device == "cuda" else "fp32"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    examples = make_examples(case, 8 * case["batch_size"] * (case["warmup_steps"] + case["timed_steps"]))
    out = Path(tempfile.mkdtemp(prefix=f"tp-{recipe}-"))
    from studio.train.batching import ExampleDataset, PaddedCollator
    info: dict = {}
    if recipe.startswith("studio"):
        from studio.train.trainer import build_trainer
        from studio.train.worker import load_model
        project = _studio_project(case, checkpointing=recipe == "studio")
        model = load_model(project, folder, device, precision)
        trainer, _ = build_trainer(project, model, examples, [], 1, device, precision, out,
                                   steps=case["warmup_steps"] + case["timed_steps"])
        base = model.get_base_model()
        info = {"attention": base.config._attn_implementation, "lean_loss": trainer.lean is not None,
                "packing": trainer.packing, "token_budget": case["batch_size"] * case["max_seq_len"],
                "gradient_checkpointing": project.train.gradient_checkpointing}
    elif recipe == "unsloth":
        model, trainer = _unsloth_trainer(case, folder, device, precision, examples, out)
    else:
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM, Trainer
        kwargs = {"dtype": dtype, "attn_implementation": "sdpa"}
        if case["method"] == "qlora":
            kwargs["quantization_config"] = _nf4(dtype)
        if device == "cuda":
            kwargs["device_map"] = {"": 0}
        model = AutoModelForCausalLM.from_pretrained(str(folder), **kwargs)
        model = get_peft_model(model, LoraConfig(r=case["rank"], lora_alpha=case["alpha"], lora_dropout=case["dropout"],
                                                 target_modules=PROJECTIONS, task_type="CAUSAL_LM"))
        trainer = Trainer(model=model, args=_training_args(case, out, device, precision, packed=False),
                          train_dataset=ExampleDataset(examples), data_collator=PaddedCollator(1))
    counter = CountingCollator(trainer.data_collator)
    trainer.data_collator = counter
    timer = _timer(device)
    trainer.add_callback(timer)
    trainer.train()
    try:
        heldout = heldout_loss(model, make_examples(dict(case, seed=case["seed"] + 1), 16), device)
    except Exception as exc:  # noqa: BLE001 - keep the speed and memory measured above
        heldout, info["heldout_error"] = None, f"{type(exc).__name__}: {exc}"
    warm, timed = case["warmup_steps"], case["timed_steps"]
    seconds = timer.ends[warm + timed] - timer.ends[warm]
    tokens = sum(counter.tokens[warm:warm + timed])
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    result = {"tokens_per_s": tokens / seconds, "timed_tokens": tokens, "timed_seconds": seconds,
              "tokens_per_step": tokens / timed, "final_loss": losses[-1] if losses else None, "losses": losses,
              "heldout_loss": heldout,
              "steps": trainer.state.global_step, **info}
    if device == "cuda":
        result.update(peak_reserved=int(torch.cuda.max_memory_reserved()),
                      peak_allocated=int(torch.cuda.max_memory_allocated()))
    else:  # the whole process (Python, libraries, model, training) at its largest; Linux counts KiB
        import resource
        result["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return result


def heldout_loss(model, examples, device: str) -> float:
    """Token-weighted loss on the same held-out examples for every recipe, each example alone (no padding,
    no packing), through the model's own forward: unlike the last training step's loss, it does not depend on
    which examples a recipe happened to batch last."""
    import torch
    from studio.data.tokenize import IGNORE
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for e in examples:
            ids = torch.tensor([e.input_ids], device=device)
            labels = torch.tensor([e.labels], device=device)
            n = int((labels[:, 1:] != IGNORE).sum())
            total += float(model(input_ids=ids, labels=labels).loss) * n
            count += n
    return total / count


def _studio_project(case: dict, checkpointing: bool):
    from studio.project import Project
    p = Project(name="throughput")
    p.method.method, p.method.rank, p.method.alpha, p.method.dropout = (case["method"], case["rank"], case["alpha"],
                                                                        case["dropout"])
    p.method.target_modules = list(PROJECTIONS)
    t = p.train
    t.batch_size, t.max_seq_len, t.learning_rate, t.seed = (case["batch_size"], case["max_seq_len"],
                                                            case["learning_rate"], case["seed"])
    t.warmup_ratio, t.lr_scheduler = 0.0, "constant"
    t.gradient_checkpointing = checkpointing
    p.validate()
    return p


def _nf4(dtype):
    from transformers import BitsAndBytesConfig
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=dtype)


def _unsloth_trainer(case, folder, device, precision, examples, out):
    import torch
    from transformers import Trainer
    from unsloth import FastLanguageModel

    from studio.train.batching import ExampleDataset, PaddedCollator
    model, _ = FastLanguageModel.from_pretrained(model_name=str(folder), max_seq_length=case["max_seq_len"],
                                                 dtype=torch.bfloat16, load_in_4bit=case["method"] == "qlora")
    model = FastLanguageModel.get_peft_model(model, r=case["rank"], lora_alpha=case["alpha"],
                                             lora_dropout=case["dropout"], target_modules=PROJECTIONS, bias="none",
                                             use_gradient_checkpointing="unsloth", random_state=case["seed"])
    trainer = Trainer(model=model, args=_training_args(case, out, device, precision, packed=False),
                      train_dataset=ExampleDataset(examples), data_collator=PaddedCollator(1))
    return model, trainer


# --- the driver ------------------------------------------------------------------------------------------

def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or "unknown"


def _env(recipe: str) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "UNSLOTH_DISABLE_STATISTICS": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("PYTORCH_CUDA_ALLOC_CONF", None)
    if recipe != "plain":  # the studio's worker, Unsloth's import and the fair plain variant all set it
        env["PYTORCH_CUDA_ALLOC_CONF"] = "expandable_segments:True"
    return env


def run_in_process(recipe: str, case: dict, folder: Path, device: str, timeout: int) -> dict:
    cmd = [sys.executable, __file__, "--one", json.dumps({"recipe": recipe, "case": case, "folder": str(folder),
                                                         "device": device})]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(recipe), timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish in {timeout} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if lines:
        return json.loads(lines[-1][len("RESULT "):])
    tail = [ln for ln in (proc.stderr or proc.stdout).strip().splitlines() if ln.strip()][-4:]
    return {"error": " | ".join(tail) or f"exit code {proc.returncode}",
            "oom": "OutOfMemoryError" in (proc.stderr or "")}


def measure_case(index: int, case: dict, recipes: list[str], cache: Path, device: str, timeout: int,
                 record: dict, save) -> dict:
    """Run the recipes of one configuration into `record`, calling save(record) after each one."""
    folder = ensure_model(case["model"], cache, device)
    record.update({"case": index, **case, "lengths": f"uniform {case['min_len']}..{case['max_len']}",
                   "target_modules": PROJECTIONS})
    for recipe in recipes:
        result = run_in_process(recipe, case, folder, device, timeout)
        record[f"tokens_per_s_{recipe}"] = result.get("tokens_per_s")
        record[f"peak_reserved_{recipe}"] = result.get("peak_reserved")
        record[f"peak_allocated_{recipe}"] = result.get("peak_allocated")
        record[f"final_loss_{recipe}"] = result.get("final_loss")
        record[f"heldout_loss_{recipe}"] = result.get("heldout_loss")
        if device == "cpu":
            record[f"peak_rss_{recipe}"] = result.get("peak_rss")
        if recipe.startswith("studio"):  # the planner must model what the trainer really does: compare
            record[f"estimate_reserved_{recipe}"] = _planned(case, checkpointing=recipe == "studio")
        record[f"detail_{recipe}"] = {k: v for k, v in result.items() if k not in (
            "tokens_per_s", "peak_reserved", "peak_allocated", "peak_rss", "final_loss", "heldout_loss")}
        memory = ("peak reserved", result.get("peak_reserved")) if device == "cuda" else ("peak RSS",
                                                                                          result.get("peak_rss"))
        shown = (f"{result['tokens_per_s']:9.0f} tok/s, {memory[0]} "
                 f"{(memory[1] or 0) / 2**30:6.2f} GiB, final loss {result['final_loss']:.4f}, "
                 f"held-out loss {result['heldout_loss']:.4f}"
                 if "tokens_per_s" in result else f"failed: {result['error']}")
        print(f"{index:2d} {case['model']:<13} {case['method']:<6} {recipe:<17} {shown}", flush=True)
        _ratios(record)
        save(record)
    return record


def _planned(case: dict, checkpointing: bool) -> int:
    from studio.plan import PlanSettings, estimate
    settings = PlanSettings.from_project(_studio_project(case, checkpointing))
    return estimate(MODELS[case["model"]], settings).reserved_bytes


def _ratios(r: dict) -> None:
    def ratio(a, b):
        return round(a / b, 3) if a and b else None
    r["speedup_vs_plain"] = ratio(r.get("tokens_per_s_studio"), r.get("tokens_per_s_plain"))
    r["speedup_vs_plain_expandable"] = ratio(r.get("tokens_per_s_studio"), r.get("tokens_per_s_plain_expandable"))
    r["speedup_vs_unsloth"] = ratio(r.get("tokens_per_s_studio"), r.get("tokens_per_s_unsloth"))
    r["speedup_nockpt_vs_unsloth"] = ratio(r.get("tokens_per_s_studio_nockpt"), r.get("tokens_per_s_unsloth"))
    r["memory_vs_plain"] = ratio(r.get("peak_reserved_studio"), r.get("peak_reserved_plain"))
    r["memory_vs_unsloth"] = ratio(r.get("peak_reserved_studio"), r.get("peak_reserved_unsloth"))
    r["memory_nockpt_vs_plain"] = ratio(r.get("peak_reserved_studio_nockpt"), r.get("peak_reserved_plain"))
    r["speedup_nockpt_vs_plain"] = ratio(r.get("tokens_per_s_studio_nockpt"), r.get("tokens_per_s_plain"))
    if "peak_rss_plain" in r:  # CPU runs: the whole process's peak memory
        r["rss_vs_plain"] = ratio(r.get("peak_rss_studio"), r.get("peak_rss_plain"))
        r["rss_nockpt_vs_plain"] = ratio(r.get("peak_rss_studio_nockpt"), r.get("peak_rss_plain"))
    for kind in ("final", "heldout"):
        a, b = r.get(f"{kind}_loss_studio"), r.get(f"{kind}_loss_plain")
        r[f"{kind}_loss_diff_vs_plain"] = round(a - b, 4) if a is not None and b is not None else None


def _write(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(records, indent=2), encoding="utf-8")
    tmp.replace(path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", help="which configurations, e.g. 0-1,4 (default: all)")
    ap.add_argument("--recipes", default=",".join(RECIPES), help=f"some of {','.join(RECIPES)}")
    ap.add_argument("--list", action="store_true", help="print the configurations and exit")
    ap.add_argument("--quick", action="store_true", help="tiny CPU smoke test; writes only to --out")
    ap.add_argument("--cpu", action="store_true", help="the CPU comparison; bench/results/throughput_cpu.json")
    ap.add_argument("--out", type=Path, help="results file (default: bench/results/throughput.json)")
    ap.add_argument("--timeout", type=int, default=540, help="seconds per recipe process")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "ftstudio-throughput")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one recipe and print its result
    args = ap.parse_args()
    if args.one:
        job = json.loads(args.one)
        print("RESULT " + json.dumps(run_recipe(job["recipe"], job["case"], Path(job["folder"]), job["device"])))
        return 0
    recipes = [r for r in args.recipes.split(",") if r]
    unknown = set(recipes) - set(RECIPES)
    if unknown:
        ap.error(f"unknown recipe {', '.join(sorted(unknown))}; choose from {', '.join(RECIPES)}")
    if args.list:
        for i, case in enumerate(CASES):
            print(f"{i:2d} {json.dumps(case)}")
        return 0
    import torch
    if args.quick:
        device, cases = "cpu", {0: QUICK_CASE}
        out = args.out or Path(tempfile.gettempdir()) / "throughput-quick.json"
        recipes = [r for r in recipes if r != "unsloth"] + (["unsloth"] if "unsloth" in recipes else [])
    elif args.cpu:
        device, out = "cpu", args.out or RESULTS_CPU
        cases = {i: CPU_CASES[i] for i in select_cases(args.cases, len(CPU_CASES))}
        recipes = [r for r in recipes if r in CPU_RECIPES]
    else:
        if not torch.cuda.is_available():
            print("throughput: no CUDA GPU on this machine, so there is nothing to measure; skipped (no results "
                  "written). Run it on a machine with an NVIDIA GPU, or try --quick.")
            return 0
        device, out = "cuda", args.out or RESULTS
        cases = {i: CASES[i] for i in select_cases(args.cases, len(CASES))}
    if device == "cuda":
        device_name = torch.cuda.get_device_name(0)
    elif args.cpu:
        device_name = f"cpu: {_cpu_name()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"
    else:
        device_name = "cpu (smoke test, not a result)"
    records = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else []
    by_case = {(r["case"], r["device"]): r for r in records}
    measured_with = versions("torch", "transformers", "peft", "bitsandbytes", "unsloth", "unsloth_zoo")

    def save(record: dict) -> None:  # after every recipe, so a command cut off at its time limit keeps its work
        record.update(device=device_name, versions=measured_with,
                      date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
        by_case[(record["case"], device_name)] = record
        _write(out, [by_case[k] for k in sorted(by_case, key=lambda k: (k[1], k[0]))])

    for index, case in cases.items():
        earlier = dict(by_case.get((index, device_name), {}))  # other recipes of it, from an earlier slice
        measure_case(index, case, recipes, args.cache, device, args.timeout, earlier, save)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
