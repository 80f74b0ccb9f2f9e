"""Where a Q8_0 GGUF's divergence from the merged model comes from: its 8-bit weights, or llama.cpp's CPU
kernels, which round the activations to 8 bits too (a Q8_0 weight row is multiplied with the input quantized
to Q8_0 blocks, vec_dot_q8_0_q8_0).

Two kinds of measurement, on the same held-out tokens and against the same float32 reference as the export's
parity check (studio/export/parity.py):
  * transformers, float32, with Q8_0's rounding applied to the weights, to the inputs of every matmul whose
    weight llama.cpp stores as Q8_0, or to both (blocks of 32 along the input dimension, scale = max|x|/127
    stored as fp16);
  * llama.cpp itself, on the 16-bit file, the Q8_0 file and Q8_0 files with some tensors kept at F16 (made by
    the same llama_model_quantize call as the export, with tensor overrides).

    python bench/q8_0_breakdown.py RUN_DIR F16_GGUF [--out bench/results/q8_0_breakdown.json]
"""
from __future__ import annotations

import argparse
import ctypes
import importlib.metadata
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def q8_0(x, half_away: bool):
    """Quantize-dequantize along the last dimension as Q8_0 does. Weights are quantized by llama.cpp's
    reference code (roundf: halves away from zero); activations by its SIMD code (halves to even)."""
    import torch

    blocks = x.reshape(-1, 32).float()
    d = blocks.abs().amax(-1, keepdim=True) / 127
    scaled = blocks * torch.where(d > 0, 1 / d, torch.zeros_like(d))
    q = torch.sign(scaled) * torch.floor(scaled.abs() + 0.5) if half_away else torch.round(scaled)
    return (q * d.half().float()).reshape(x.shape)


def transformers_logits(model_dir: Path, sequences, weights: str = "", activations: str = "") -> list:
    """weights: "", "all" or "embedding" (the tied token_embd/output matrix); activations: "", "all" or
    "lm_head" (the output layer's input only)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    with torch.no_grad():
        if weights in ("all", "embedding"):
            model.model.embed_tokens.weight.copy_(q8_0(model.model.embed_tokens.weight, True))
            if model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr():
                model.lm_head.weight.copy_(q8_0(model.lm_head.weight, True))
        for name, module in model.named_modules():
            if not isinstance(module, torch.nn.Linear):
                continue
            if weights == "all" and any(s in name for s in LINEAR):
                module.weight.copy_(q8_0(module.weight, True))
            if name == "lm_head" and activations or activations == "all" and any(s in name for s in LINEAR):
                module.register_forward_pre_hook(lambda m, args: (q8_0(args[0], False),))
    with torch.inference_mode():
        return [model(torch.tensor([ids])).logits[0].numpy() for ids in sequences]


def quantize_q8_0(source: Path, target: Path, f16_patterns: tuple[str, ...] = (), embedding_f16: bool = False):
    """Our export's llama_model_quantize call, with tensors matching `f16_patterns` (regex) kept at F16."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0
    params.nthread = os.cpu_count() or 1
    if embedding_f16:
        params.token_embedding_type = 1  # GGML_TYPE_F16
    overrides = (llama_cpp.llama_model_tensor_override * (len(f16_patterns) + 1))()
    for i, pattern in enumerate(f16_patterns):
        overrides[i].pattern, overrides[i].type = pattern.encode(), 1
    if f16_patterns:
        params.tt_overrides = ctypes.cast(overrides, ctypes.POINTER(llama_cpp.llama_model_tensor_override))
    if llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), params) != 0:
        raise RuntimeError(f"quantizing {source} failed")


def llama_cpp_logits(path: Path, sequences) -> list:
    from llama_cpp import Llama

    from studio.export import parity

    llm = Llama(model_path=str(path), n_ctx=max(map(len, sequences)) + 32, logits_all=True,
                n_threads=os.cpu_count() or 1, verbose=False)
    try:
        return parity.gguf_outputs(llm, None, sequences, [])[0]
    finally:
        llm.close()


def main() -> None:
    import llama_cpp
    import torch
    import transformers
    from transformers import AutoTokenizer

    from studio.export import parity
    from studio.train.runs import load_run_project

    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("f16_gguf", type=Path)
    ap.add_argument("--out", type=Path, default=Path("bench/results/q8_0_breakdown.json"))
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    model_dir = args.run_dir / "merged"
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    rows, origin = parity.held_out_rows(args.run_dir)
    texts = [parity.render_row(tokenizer, row, load_run_project(args.run_dir).data.system_prompt) for row in rows]
    sequences = parity.token_sequences(tokenizer, texts)
    started = time.time()
    reference = transformers_logits(model_dir, sequences)
    results: dict[str, dict] = {}

    def record(section: str, name: str, logits: list) -> None:
        metrics = parity.compare(reference, logits, sequences)
        results.setdefault(section, {})[name] = {k: round(v, 6) for k, v in metrics.items()
                                                 if k in ("top1", "mean_kl", "ppl_ratio")}
        print(section, name, results[section][name], flush=True)

    simulated = "transformers float32, Q8_0 rounding simulated"
    record(simulated, "weights only", transformers_logits(model_dir, sequences, weights="all"))
    record(simulated, "matmul inputs only", transformers_logits(model_dir, sequences, activations="all"))
    record(simulated, "weights and matmul inputs", transformers_logits(model_dir, sequences, "all", "all"))
    record(simulated, "token_embd weights only", transformers_logits(model_dir, sequences, weights="embedding"))
    record(simulated, "output layer's input only", transformers_logits(model_dir, sequences, activations="lm_head"))
    measured = "llama.cpp (llama-cpp-python, CPU)"
    record(measured, "F16 file", llama_cpp_logits(args.f16_gguf, sequences))
    with tempfile.TemporaryDirectory() as tmp:
        variants = {"Q8_0 file (the export's)": {},
                    "Q8_0, token_embd (tied output) kept F16": {"embedding_f16": True},
                    "Q8_0, only token_embd (tied output) Q8_0, blocks F16": {"f16_patterns": (r"blk\.",)},
                    "Q8_0, FFN kept F16 (attention + token_embd Q8_0)": {"f16_patterns": (r"ffn_",)}}
        for i, (name, how) in enumerate(variants.items()):
            path = Path(tmp) / f"v{i}.gguf"
            quantize_q8_0(args.f16_gguf, path, **how)
            record(measured, name, llama_cpp_logits(path, sequences))
            path.unlink()
    report = {
        "what": " ".join(__doc__.split("\n\n")[0].split()),
        "date": time.strftime("%Y-%m-%d"),
        "command": "python bench/q8_0_breakdown.py " + " ".join(sys.argv[1:]),
        "model": str(model_dir), "text": origin, "positions": sum(len(ids) - 1 for ids in sequences),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "versions": {"llama-cpp-python": llama_cpp.__version__, "transformers": transformers.__version__,
                     "torch": torch.__version__, "gguf": importlib.metadata.version("gguf")},
        "seconds": round(time.time() - started, 1),
        **results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
