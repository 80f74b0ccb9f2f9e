"""QLoRA (4-bit NF4 base), 8-bit LoRA and DoRA end to end on the CPU, with the real libraries: bitsandbytes
quantizes and trains there (slowly), the adapter is merged into the 16-bit base reloaded from disk (checked
weight by weight against base + scale * B @ A computed here in fp32), llama.cpp's converter exports it, the
parity check passes, and the Test page's chat answers, first with the adapter on the base loaded as it was
trained, then from the exported GGUF. The 8-bit and paged optimizers of bitsandbytes train on the CPU too."""
import json
from pathlib import Path

import pytest
import torch

from studio.export import export_run
from studio.merge import merge_run
from studio.models import resolve_model
from studio.plan.advice import CPU_NOTES
from studio.project import Project, save_project
from studio.train import run_training
from studio.train.events import read_events
from studio.train.runs import latest_checkpoint

on_the_cpu = pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU path; tests/test_gpu.py runs these on a GPU")
EMBEDDED = "embedded:SmolLM2-135M-Instruct"
QUESTION = [{"role": "user", "content": "What colour is the sea?"}]


def cpu_project(tmp_path: Path, model: str, data: Path, method: str, steps: int = 3, **train) -> Project:
    """A short run: a few steps of short packed rows, evaluated and saved once, at the end."""
    project = Project(name=f"kbit-{method}")
    project.evaluate.after_training = project.evaluate.after_export = False  # checked in test_evaluate.py
    project.model.name = model
    project.data.train_file = str(data)
    project.method.method = method
    project.method.rank = 8
    project.method.alpha = 16
    t = project.train
    t.max_steps, t.eval_steps, t.save_steps = steps, steps, steps
    t.batch_size, t.max_seq_len, t.learning_rate = 2, 64, 1e-3
    for key, value in train.items():
        setattr(t, key, value)
    save_project(project, tmp_path / "kbit.ftproj.toml")
    return project


def load_tensors(folder: Path) -> dict:
    from safetensors.torch import load_file
    tensors = {}
    for file in sorted(folder.glob("*.safetensors")):
        tensors.update(load_file(str(file)))
    return tensors


def expected_merge(base: dict, adapter: dict, config: dict) -> dict:
    """Each adapted weight as the merge must leave it, computed in fp32 from the 16-bit base on disk and the
    saved adapter: W + (alpha / r) * B @ A, and for DoRA rescaled row by row to the learned magnitude."""
    scale = config["lora_alpha"] / config["r"]
    out = {}
    for key in adapter:
        if not key.endswith(".lora_A.weight"):
            continue
        prefix = key[: -len(".lora_A.weight")]
        name = prefix.removeprefix("base_model.model.") + ".weight"
        weight = base[name].float() + scale * adapter[prefix + ".lora_B.weight"].float() @ adapter[key].float()
        if config.get("use_dora"):
            magnitude = adapter[prefix + ".lora_magnitude_vector"].float()
            weight = (magnitude / weight.norm(dim=1))[:, None] * weight
        out[name] = weight
    return out


def bf16_tolerance(values: torch.Tensor) -> torch.Tensor:
    """The merged model is saved in bf16: one rounding, at most half a unit in the 8th significant bit."""
    return values.abs() * 2.0 ** -8 + 1e-7


def nf4_round_trip(weight: torch.Tensor) -> torch.Tensor:
    """The weight as the 4-bit base the run trained against holds it (what a merge must never start from)."""
    import bitsandbytes.functional as bnbf
    packed, state = bnbf.quantize_4bit(weight.to(torch.bfloat16), quant_type="nf4", compress_statistics=True)
    return bnbf.dequantize_4bit(packed, state).float()


def check_merge(run_dir: Path, base_dir: Path, merged_dir: Path, method: str) -> int:
    base, merged = load_tensors(base_dir), load_tensors(merged_dir)
    adapter = load_tensors(run_dir / "adapter")
    config = json.loads((run_dir / "adapter" / "adapter_config.json").read_text())
    expected = expected_merge(base, adapter, config)
    assert expected, "the adapter holds no LoRA weights"
    moved = 0
    for name, want in expected.items():
        got = merged[name].float()
        tolerance = bf16_tolerance(want)
        assert ((got - want).abs() <= tolerance).all(), (name, (got - want).abs().max())
        moved += bool(((got - base[name].float()).abs() > tolerance).any())  # the adapter changed it
        if method == "qlora":  # the same merge into the 4-bit weights: most values off by more than rounding
            four_bit = nf4_round_trip(base[name].float()) + (want - base[name].float())
            assert ((got - four_bit).abs() > tolerance).float().mean() > 0.5, name
    assert moved >= len(expected) // 2, f"only {moved} of {len(expected)} weights changed"
    return len(expected)


def adapter_chat_answers(run_dir: Path, model: str, method: str) -> None:
    """The Test page's chat before export: the adapter on its base, loaded as the run trained it."""
    from ui.pages.test import load_chat, tuned_source

    kind, what = tuned_source(run_dir)
    assert kind == "hf" and Path(what).name == "adapter"
    chat = load_chat(kind, what, model)
    q_proj = chat.model.get_base_model().model.layers[0].self_attn.q_proj.base_layer
    expected = {"qlora": "Linear4bit", "lora8bit": "Linear8bitLt"}.get(method, "Linear")
    assert type(q_proj).__name__ == expected
    pieces = list(chat.stream(QUESTION, max_tokens=6))
    assert pieces and all(isinstance(p, str) for p in pieces)


def gguf_chat_answers(run_dir: Path, model: str) -> None:
    """The Test page's chat after export: it prefers the exported GGUF, in llama.cpp."""
    from ui.pages.test import load_chat, tuned_source

    kind, what = tuned_source(run_dir)
    assert kind == "gguf"
    chat = load_chat(kind, what, model)
    pieces = list(chat.stream(QUESTION, max_tokens=6))
    chat.close()
    assert pieces


CASES = [("tiny", "qlora"), ("tiny", "lora8bit"), ("tiny", "dora"),
         ("embedded", "qlora"), ("embedded", "lora8bit"), ("embedded", "dora")]


def test_without_a_gpu_the_plan_says_plainly_what_quantized_bases_cost():
    from studio.plan import GpuInfo, estimate, verdict
    from studio.plan.advice import CPU_METHOD_SUFFIX

    config = {"model_type": "llama", "vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536,
              "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3}
    no_gpu = GpuInfo(False, sentence="No CUDA GPU was found.")
    for method in ("qlora", "lora8bit"):
        assert CPU_NOTES[method] in verdict(estimate(config, {"method": method}), no_gpu).sentence
        assert "slow" in CPU_NOTES[method] and "small model or a quick test" in CPU_NOTES[method]
    assert "trains on the CPU" in verdict(estimate(config, {"method": "lora"}), no_gpu).sentence
    assert CPU_NOTES["bf16"] in verdict(estimate(config, {"precision": "bf16"}), no_gpu).sentence
    assert "slow" in CPU_METHOD_SUFFIX


@pytest.mark.slow
@on_the_cpu
@pytest.mark.parametrize("which, method", CASES, ids=[f"{w}-{m}" for w, m in CASES])
def test_trains_merges_exports_and_answers_on_the_cpu(tmp_path, request, sample_data, which, method):
    model = str(request.getfixturevalue("tiny_model_dir")) if which == "tiny" else EMBEDDED
    project = cpu_project(tmp_path, model, sample_data, method)
    run_dir, final = run_training(project)
    assert final["type"] == "done", final
    events = list(read_events(run_dir / "events.jsonl"))
    messages = [e.get("message", "") for e in events if e["type"] == "log"]
    assert "Device: cpu, precision: fp32, method: " + method in messages
    if method in CPU_NOTES:  # the run says plainly what a CPU means for this method
        assert CPU_NOTES[method] in messages
    losses = [e["loss"] for e in events if e["type"] == "metrics"]
    assert len(losses) == 3 and all(0 < loss < 20 for loss in losses)

    adapter_chat_answers(run_dir, model, method)
    merged = merge_run(run_dir)
    check_merge(run_dir, resolve_model(model), merged, method)
    result = export_run(run_dir, ["q8_0"])
    assert not result.failed, result.failed
    assert result.parity["q8_0"]["passed"], result.parity
    gguf_chat_answers(run_dir, model)


# What bitsandbytes' optimizers keep per trainable value: 8-bit codes, or fp32 ("paged" state is ordinary
# memory on a CPU: the paging is CUDA unified memory's).
OPTIMIZER_STATE = {"adamw_8bit": torch.uint8, "paged_adamw_8bit": torch.uint8, "paged_adamw_32bit": torch.float32}


@pytest.mark.slow
@on_the_cpu
@pytest.mark.parametrize("optimizer", list(OPTIMIZER_STATE))
def test_bitsandbytes_optimizers_train_a_qlora_run_on_the_cpu(tmp_path, tiny_model_dir, sample_data, optimizer):
    project = cpu_project(tmp_path, str(tiny_model_dir), sample_data, "qlora", steps=2, optimizer=optimizer,
                          learning_rate=1e-2)
    project.method.rank = 16  # LoRA A is 16 x 256 = 4096 values: the size from which bitsandbytes uses 8 bits
    save_project(project, project.path)
    run_dir, final = run_training(project)
    assert final["type"] == "done", final
    state = torch.load(latest_checkpoint(run_dir) / "optimizer.pt", weights_only=True)["state"]
    # (bitsandbytes keeps fp32 state for tensors under 4096 values: the narrow k/v adapters here)
    # newer bitsandbytes keep the quantized state under one key of its own in the saved state
    kept = [s.get("__bnb_optimizer_quant_state__", s) for s in state.values()]
    assert OPTIMIZER_STATE[optimizer] in {s["state1"].dtype for s in kept}
    losses = [e["loss"] for e in read_events(run_dir / "events.jsonl") if e["type"] == "metrics"]
    assert len(losses) == 2 and losses[1] < losses[0]
