"""One process against two (DDP, and FSDP) on the same data: the loss of every step, side by side.

Trains the embedded model (SmolLM2-135M-Instruct, LoRA r16, dropout 0, lr 1e-3, packed batches of 4 x 256
tokens) on the pirate sample through the studio's own launcher, once with train.devices = 1 and once with 2
for each way of sharing; without a GPU the processes are CPU processes talking over gloo (FSDP between CPU
processes needs tests/cpu_fsdp on PYTHONPATH, which this script adds). Dropout is 0 because each process
draws its own masks.

    python bench/processes.py [--steps 20] [--model embedded|tiny] [--out bench/results/processes_cpu.json]

`--model tiny`: a random-init 2-layer llama (hidden 256) on SmolLM2's tokenizer, for machines short of memory
(each process holds its own copy of the model).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.benchlib import versions  # noqa: E402


TINY = dict(model_type="llama", hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=1024, tie_word_embeddings=True)


def tiny_model(folder: Path) -> Path:
    from transformers import AutoTokenizer

    from bench.benchlib import random_checkpoint
    from studio.models import embedded_model_dir

    tokenizer = AutoTokenizer.from_pretrained(str(embedded_model_dir()))
    config = dict(TINY, vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                  eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return random_checkpoint(config, folder, "cpu", also_save=tokenizer.save_pretrained)


def run(folder: Path, model: str, steps: int, devices: int, sharding: str | None) -> dict:
    from studio.project import Project, save_project
    from studio.train import run_training
    from studio.train.events import read_events

    project = Project(name="processes")
    project.model.name = model
    project.data.train_file = str(ROOT / "resources" / "samples" / "pirate_chat.jsonl")
    project.method.dropout = 0.0
    project.train.max_steps, project.train.batch_size, project.train.max_seq_len = steps, 4, 256
    project.train.eval_steps, project.train.save_steps, project.train.devices = steps, steps, devices
    project.train.learning_rate = 1e-3
    folder.mkdir(parents=True)
    save_project(project, folder / "p.ftproj.toml")
    os.environ.pop("FTSTUDIO_SHARDING", None)
    if sharding:
        os.environ["FTSTUDIO_SHARDING"] = sharding
    started = time.time()
    run_dir, final = run_training(project)
    if final["type"] != "done":
        raise SystemExit(f"{devices} process(es), {sharding or 'ddp'}: {final.get('message')}")
    events = list(read_events(run_dir / "events.jsonl"))
    return {"seconds": round(time.time() - started, 1),
            "loss": {e["step"]: e["loss"] for e in events if e["type"] == "metrics"},
            "grad_norm": {e["step"]: e["grad_norm"] for e in events if e["type"] == "metrics"},
            "eval_loss": {e["step"]: e["eval_loss"] for e in events if e["type"] == "eval"}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--model", choices=("embedded", "tiny"), default="embedded")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "processes_cpu.json")
    args = parser.parse_args()
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tests" / "cpu_fsdp"), str(ROOT),
                                                os.environ.get("PYTHONPATH", "")])
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        model = "embedded:SmolLM2-135M-Instruct" if args.model == "embedded" else str(tiny_model(Path(tmp) / "tiny"))
        for name, devices, sharding in (("one process", 1, None), ("two processes, DDP", 2, "ddp"),
                                        ("two processes, FSDP", 2, "fsdp")):
            results[name] = run(Path(tmp) / name.replace(" ", "_").replace(",", ""), model, args.steps, devices,
                                sharding)
            print(name, results[name]["seconds"], "s", flush=True)
    one = results["one process"]["loss"]
    table = []
    for step in sorted(one):
        row = {"step": step, "one process": one[step]}
        for name in ("two processes, DDP", "two processes, FSDP"):
            row[name] = results[name]["loss"][step]
        table.append(row)
    worst = {name: max(abs(results[name]["loss"][s] - one[s]) / one[s] for s in one)
             for name in ("two processes, DDP", "two processes, FSDP")}
    import torch
    out = {"date": time.strftime("%Y-%m-%d"), "device": "cpu" if not torch.cuda.is_available() else
           torch.cuda.get_device_name(0), "machine": platform.processor() or platform.machine(),
           "cores": os.cpu_count(), "versions": versions("torch", "transformers", "accelerate", "peft"),
           "setup": f"{'embedded SmolLM2-135M-Instruct' if args.model == 'embedded' else 'tiny random llama'}, "
                    "LoRA r16 all-linear, dropout 0, packed 4 x 256 tokens, "
                    f"lr 1e-3 cosine, {args.steps} steps, pirate_chat.jsonl",
           "losses": table, "worst_relative_difference": worst,
           "eval_loss": {name: r["eval_loss"] for name, r in results.items()},
           "seconds": {name: r["seconds"] for name, r in results.items()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"{'step':>4}  {'one process':>12}  {'2 x DDP':>12}  {'2 x FSDP':>12}")
    for row in table:
        print(f"{row['step']:>4}  {row['one process']:>12.6f}  {row['two processes, DDP']:>12.6f}  "
              f"{row['two processes, FSDP']:>12.6f}")
    print("worst relative difference:", {k: f"{v:.1e}" for k, v in worst.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
