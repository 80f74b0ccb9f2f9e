"""The memory planner against hand-computed values and against real transformers / peft models on CPU."""
import gc
import json
import subprocess
import sys
import weakref

import pytest

from studio.errors import ProjectError
from studio.plan import (GpuInfo, PlanSettings, auto_fit, estimate, gpu_from_numbers, measured_peak, method_advice,
                         shape_from_config, verdict)
from studio.plan.estimator import ALLOCATOR_FIXED, CUDA_CONTEXT, LABELS, NF4_BYTES
from studio.plan.fit import FITS

BASE = dict(hidden_size=64, intermediate_size=176, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=320, tie_word_embeddings=False)
CONFIGS = {
    "llama": dict(BASE, model_type="llama"),
    "llama_tied_bias": dict(BASE, model_type="llama", tie_word_embeddings=True, attention_bias=True),
    "qwen2": dict(BASE, model_type="qwen2"),
    "qwen3": dict(BASE, model_type="qwen3", head_dim=32),
    "mistral": dict(BASE, model_type="mistral"),
    "gemma": dict(BASE, model_type="gemma", head_dim=24, tie_word_embeddings=True),
    "phi3": dict(BASE, model_type="phi3", pad_token_id=0, eos_token_id=1, bos_token_id=1),
}


def _model(cfg, dtype="bfloat16"):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(AutoConfig.for_model(**cfg), dtype=getattr(torch, dtype),
                                            attn_implementation="sdpa")


@pytest.mark.parametrize("name", CONFIGS)
def test_parameter_count_matches_transformers(name):
    model = _model(CONFIGS[name])
    assert shape_from_config(CONFIGS[name]).total_params == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name,targets,dora", [
    ("llama", ["all-linear"], False), ("qwen2", ["q_proj", "v_proj"], False), ("phi3", ["all-linear"], False),
    ("gemma", ["all-linear"], True), ("qwen3", ["o_proj", "down_proj"], True)])
def test_trainable_count_matches_peft(name, targets, dora):
    from peft import LoraConfig, get_peft_model
    cfg = CONFIGS[name]
    model = get_peft_model(_model(cfg), LoraConfig(r=4, lora_alpha=8, target_modules=targets[0] if targets == [
        "all-linear"] else targets, use_dora=dora))
    real = sum(p.numel() for p in model.parameters() if p.requires_grad)
    est = estimate(cfg, PlanSettings(method="dora" if dora else "lora", rank=4, target_modules=tuple(targets)))
    assert est.params_trainable == real
    assert est.breakdown["adapters"] == 4 * real  # fp32 adapters


def test_breakdown_hand_computed_lora():
    cfg = CONFIGS["llama"]
    s = PlanSettings(method="lora", rank=8, batch_size=2, max_seq_len=64, masked_attention=False, lean_loss=False)
    e = estimate(cfg, s)
    h, I, L, V, N = 64, 176, 2, 320, 128
    P = 2 * V * h + L * (2 * h * h + 2 * h * 32 + 3 * h * I + 2 * h) + h  # q,o 64x64; k,v 64x32 (2 kv heads)
    assert e.params_total == P
    lora = L * 8 * ((h + h) + (h + 32) * 2 + (h + h) + (h + I) * 2 + (I + h))
    assert e.params_trainable == lora
    b = e.breakdown
    assert list(b) == list(LABELS)
    assert b["weights"] == 2 * P and b["weights_quantized"] == 0
    assert b["optimizer"] == 8 * lora and b["gradients"] == 0  # LoRA grads are freed by the peak (tiny anyway)
    assert b["logits"] == 12 * V * N
    assert b["cuda_context"] == CUDA_CONTEXT
    assert e.total_bytes == sum(b.values())
    assert e.reserved_bytes == e.total_bytes - CUDA_CONTEXT
    # the trainer's chunked loss: one chunk of logits (here all 128 positions) + the hidden states and their grad
    lean = estimate(cfg, s.with_changes({"train.lean_loss": True}))
    assert lean.breakdown["logits"] == 8 * V * N + 2 * 2 * h * N


def test_lean_loss_holds_one_chunk_of_a_big_vocabulary():
    cfg = dict(QWEN_05B)
    s = PlanSettings(method="lora", batch_size=4, max_seq_len=1024, lean_loss=False)
    full = estimate(cfg, s)
    lean = estimate(cfg, s.with_changes({"train.lean_loss": True}))
    assert full.breakdown["logits"] == 12 * 151936 * 4096  # 7 GB of fp32 logits and their gradients
    assert lean.total_bytes < full.total_bytes - 6 * 1024 ** 3
    assert any("chunks of 441 positions" in note for note in lean.assumptions)  # 256 MiB / (4 x 151936)
    unknown = dict(CONFIGS["llama"], model_type="cohere")  # scales its logits: the trainer keeps transformers' loss
    assert estimate(unknown, {"train.lean_loss": True}).breakdown["logits"] == \
        estimate(unknown, {"train.lean_loss": False}).breakdown["logits"]


def test_offloaded_checkpoints_leave_one_layer_input_on_the_gpu():
    cfg = dict(CONFIGS["llama"], num_hidden_layers=8)
    s = PlanSettings(method="lora", batch_size=8, max_seq_len=512, gradient_checkpointing=True, masked_attention=False)
    kept = estimate(cfg, s)
    offloaded = estimate(cfg, s.with_changes({"train.offload_checkpoints": True}))
    assert kept.peak_phase == offloaded.peak_phase == "backward"
    N, h = 8 * 512, 64
    assert kept.breakdown["activations"] - offloaded.breakdown["activations"] == 7 * 2 * h * N
    # offloading without checkpointing changes nothing: there is nothing checkpointed to offload
    plain = s.with_changes({"gradient_checkpointing": False})
    offload_alone = plain.with_changes({"offload_checkpoints": True})
    assert estimate(cfg, plain).total_bytes == estimate(cfg, offload_alone).total_bytes


def test_packing_from_the_project_means_no_attention_mask():
    from studio.project import Project
    p = Project()
    assert p.train.packing and PlanSettings.from_project(p).masked_attention is False
    p.train.packing = False
    assert PlanSettings.from_project(p).masked_attention is True
    p.train.offload_checkpoints = True  # without checkpointing it has no effect, and the plan says so
    assert PlanSettings.from_project(p).offload_checkpoints is False


def test_breakdown_hand_computed_full_and_qlora():
    cfg = CONFIGS["llama"]
    full = estimate(cfg, PlanSettings(method="full", batch_size=1, max_seq_len=32, grad_accumulation=4))
    P = full.params_total
    assert full.params_trainable == P
    assert full.breakdown["weights"] == 2 * P
    assert full.breakdown["gradients"] == 2 * P  # accumulation keeps every gradient between micro-batches
    assert full.breakdown["optimizer"] == 4 * P  # AdamW moments in bf16
    q = estimate(cfg, PlanSettings(method="qlora", rank=8))
    lin = 2 * (2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * 176)
    assert q.breakdown["weights_quantized"] == int(lin * NF4_BYTES)
    assert q.breakdown["weights"] == 2 * (P - lin)  # embeddings, head, norms stay 16-bit
    assert abs(NF4_BYTES - 0.5159) < 1e-3


def test_checkpointing_keeps_one_input_per_layer():
    cfg = dict(CONFIGS["llama"], vocab_size=32000)  # a big vocabulary: the peak is the loss, not a layer
    s = PlanSettings(method="lora", batch_size=2, max_seq_len=64, gradient_checkpointing=True, masked_attention=False,
                     lean_loss=False)  # transformers' full-logit loss
    e = estimate(cfg, s)
    N, h = 128, 64
    assert e.breakdown["activations"] == 2 * (2 * h * N) + 4 * h * N  # layer inputs + the final norm's fp32 copy
    assert e.total_bytes < estimate(cfg, s.with_changes({"train.gradient_checkpointing": False})).total_bytes
    small_vocab = estimate(CONFIGS["llama"], s)  # here the peak is one recomputed layer's backward
    assert small_vocab.breakdown["logits"] == 0 and small_vocab.breakdown["activations"] > 2 * (2 * h * N)


def _saved_activation_bytes(model, ids):
    """Bytes autograd keeps for backward after a forward pass (parameters excluded), by real tensors."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    refs = []
    import torch
    with torch.autograd.graph.saved_tensors_hooks(lambda t: refs.append(weakref.ref(t)) or t, lambda t: t):
        model(input_ids=ids, labels=ids)
    gc.collect()
    alive = {}
    for r in refs:
        t = r()
        if t is not None and t.untyped_storage().data_ptr() not in params:
            alive[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
    return sum(alive.values())


@pytest.mark.parametrize("name,method,precision", [("llama", "full", "bf16"), ("qwen2", "lora", "bf16"),
                                                   ("gemma", "lora", "bf16"), ("qwen3", "dora", "bf16"),
                                                   ("llama", "lora", "fp32")])
def test_activation_term_matches_saved_tensors(name, method, precision):
    import torch
    from peft import LoraConfig, get_peft_model
    cfg = dict(CONFIGS[name], num_hidden_layers=3)
    model = _model(cfg, "float32" if precision == "fp32" else "bfloat16")
    model.train()
    if method != "full":  # dropout 0: on CPU dropout keeps an fp32 mask where CUDA keeps a bool one
        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear",
                                                 use_dora=method == "dora"))
    B, T = 2, 48
    measured = _saved_activation_bytes(model, torch.randint(0, 320, (B, T))) - 4 * 320 * B * T  # minus log-softmax
    e = estimate(cfg, PlanSettings(method=method, rank=4, dropout=0.0, batch_size=B, max_seq_len=T,
                                   masked_attention=False, precision=precision))
    assert measured * 0.97 <= e.breakdown["activations"] <= measured * 1.05


def test_every_method_and_optimizer_estimates():
    cfg = CONFIGS["phi3"]
    for method in ("full", "lora", "qlora", "lora8bit", "dora"):
        for opt in ("adamw_torch", "adamw_8bit", "paged_adamw_8bit", "paged_adamw_32bit", "adafactor"):
            e = estimate(cfg, {"method.method": method, "train.optimizer": opt})
            assert e.total_bytes == sum(e.breakdown.values()) > 0
            assert set(e.labels) == set(LABELS)
            assert json.dumps(e.to_dict())
    paged = estimate(cfg, {"method": "full", "optimizer": "paged_adamw_32bit"})
    assert paged.breakdown["optimizer"] == 0 and paged.paged_optimizer_bytes == 8 * paged.params_total


def test_bad_settings_are_refused():
    with pytest.raises(ProjectError):
        estimate(CONFIGS["llama"], {"method": "lorax"})
    with pytest.raises(ProjectError):
        estimate(CONFIGS["llama"], {"method": "lora", "target_modules": ["qkv_proj"]})  # a phi3 name
    with pytest.raises(ProjectError):
        estimate(CONFIGS["llama"], {"train.batch_sizes": 2})


def test_project_is_accepted():
    from studio.project import Project
    p = Project()
    p.train.batch_size = 3
    assert estimate(CONFIGS["llama"], p).settings.batch_size == 3


QWEN_05B = dict(model_type="qwen2", hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                num_attention_heads=14, num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True)


def test_verdict_and_fixes():
    cfg = QWEN_05B
    s = PlanSettings(method="lora", batch_size=8, max_seq_len=1024)
    e = estimate(cfg, s)
    on_cpu = verdict(e, GpuInfo(False, "this computer's CPU", 64 * 1024**3, 60 * 1024**3, "No CUDA GPU."))
    assert on_cpu.on_cpu and on_cpu.status == "fits" and "RAM" in on_cpu.sentence  # judged by RAM, not a GPU
    assert verdict(e, gpu_from_numbers("big", e.total_bytes * 2)).status == "fits"
    assert verdict(e, gpu_from_numbers("edge", int(e.total_bytes / 0.95))).status == "tight"
    small = gpu_from_numbers("small", int(e.total_bytes * 0.7))
    v = verdict(e, small)
    assert v.status == "does_not_fit" and v.fixes
    assert "train.gradient_checkpointing" in v.fixes[0].change
    for fix in v.fixes:
        assert fix.new_total_bytes <= FITS * small.free_bytes
        assert estimate(cfg, s.with_changes(fix.change)).total_bytes == fix.new_total_bytes
    hopeless = verdict(e, gpu_from_numbers("tiny", ALLOCATOR_FIXED))
    assert hopeless.status == "does_not_fit" and not hopeless.fixes and "smaller model" in hopeless.sentence


def test_auto_fit_picks_the_largest_batch():
    cfg = CONFIGS["llama"]
    s = PlanSettings(method="lora", batch_size=4, grad_accumulation=4, max_seq_len=512, gradient_checkpointing=True)
    gpu = gpu_from_numbers("g", estimate(cfg, s.with_changes({"batch_size": 6})).total_bytes * 1.12)
    change = auto_fit(cfg, s, gpu)
    b = change["train.batch_size"]
    assert estimate(cfg, s.with_changes(change)).total_bytes <= FITS * gpu.free_bytes
    assert estimate(cfg, s.with_changes({"batch_size": b + 1})).total_bytes > FITS * gpu.free_bytes
    assert b * change["train.grad_accumulation"] >= 16
    assert auto_fit(cfg, s, GpuInfo(False)) == {}


def test_gpu_functions_on_this_machine():
    import torch
    if torch.cuda.is_available():
        pytest.skip("this test checks the CPU answers")
    assert measured_peak() is None
    on_cpu = verdict(estimate(CONFIGS["llama"], {}), __import__("studio.plan").plan.detect_gpu())
    assert on_cpu.on_cpu and "no NVIDIA GPU, so it trains on the CPU" in on_cpu.sentence and "RAM" in on_cpu.sentence


def test_advice_texts():
    for method in ("full", "lora", "qlora", "lora8bit", "dora"):
        assert len(method_advice(method)) > 40
    assert "16-bit" in method_advice("qlora")


def test_planner_imports_neither_torch_nor_qt():
    code = "import sys, studio.plan; assert 'torch' not in sys.modules and 'PySide6' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def _cli(*argv):
    return subprocess.run([sys.executable, "-c", "import argparse, sys\n"
                           "from studio.plan.command import register\n"
                           "p = argparse.ArgumentParser(prog='ftstudio'); register(p.add_subparsers())\n"
                           "a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))", *argv],
                          capture_output=True, text=True)


def test_cli_json_and_errors(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(CONFIGS["qwen2"]))
    r = _cli("plan", "--model", str(tmp_path), "--method", "lora", "--rank", "16", "--seq", "1024", "--batch", "4",
             "--gpu-gb", "8", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["total_bytes"] == sum(out["breakdown"].values())
    assert out["verdict"]["status"] in ("fits", "tight", "does_not_fit")
    r = _cli("plan", "--model", str(tmp_path), "--method", "lorax")
    assert r.returncode == 2 and "method.method = 'lorax' is not one of" in r.stdout  # the project's own words
    assert len(r.stdout.strip().splitlines()) == 1
    r = _cli("plan", "--model", str(tmp_path / "missing"))
    assert r.returncode == 2
    project = tmp_path / "p.ftproj.toml"
    project.write_text('name = "p"\n[model]\nname = "."\n[method]\nmethod = "qlora"\n[train]\nbatch_size = 2\n')
    r = _cli("plan", str(project), "--gpu-gb", "24")
    assert r.returncode == 0 and "4-bit NF4" in r.stdout, r.stdout + r.stderr
