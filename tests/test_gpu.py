"""The studio's CUDA paths, which only a machine with an NVIDIA GPU can run (`pytest -m gpu`; bench/gpu_check.py
runs them on the GPU machine). Each trains the small-vocabulary Llama of conftest with the real worker:
bf16 with packed rows and varlen flash attention, checkpointing offloaded to pinned memory, fp16, QLoRA and
8-bit bases on bitsandbytes' CUDA kernels, stop and resume, and an out-of-memory error caught and explained.
Everything else (QLoRA and 8-bit LoRA, bf16, merging, export) also runs on the CPU in the other tests."""
import gc
import json

import pytest
import torch

from studio.project import Project, save_project
from studio.train import run_training
from studio.train.events import read_events
from studio.train.runs import STOP_FILE, create_run, latest_checkpoint

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
VARLEN = "Attention: PyTorch's varlen flash kernel on packed rows (no mask)"


def gpu_project(tmp_path, model_dir, data, method="lora", steps=4, name="gpu", **train) -> Project:
    project = Project(name=name)
    project.model.name = str(model_dir)
    project.data.train_file = str(data)
    project.method.method = method
    t = project.train
    t.max_steps, t.eval_steps, t.save_steps = steps, steps, steps
    t.batch_size, t.max_seq_len, t.learning_rate = 4, 256, 2e-3
    for key, value in train.items():
        setattr(t, key, value)
    save_project(project, tmp_path / name / f"{name}.ftproj.toml")
    return project


def finished(project):
    """(run folder, events, log lines, losses) of a run trained to the end."""
    run_dir, final = run_training(project)
    assert final["type"] == "done", final
    events = list(read_events(run_dir / "events.jsonl"))
    logs = [e.get("message", "") for e in events if e["type"] == "log"]
    return run_dir, events, logs, [e["loss"] for e in events if e["type"] == "metrics"]


def test_bf16_packed_rows_train_through_varlen_attention(tmp_path, small_vocab_model_dir, sample_data):
    project = gpu_project(tmp_path, small_vocab_model_dir, sample_data, steps=6)
    _, events, logs, losses = finished(project)
    assert "Device: cuda, precision: bf16, method: lora" in logs
    assert VARLEN in logs and not any(line.startswith("Packing is off") for line in logs)
    memory = next(e for e in events if e["type"] == "memory")  # measured beside the planner's estimate
    assert memory["reserved_bytes"] >= memory["allocated_bytes"] > 0 and memory["estimate_bytes"] > 0
    assert losses[-1] < losses[0]

    # The same run with checkpointed layers kept in pinned CPU memory recomputes the same forward pass.
    offloaded = gpu_project(tmp_path, small_vocab_model_dir, sample_data, steps=6, name="offload",
                            gradient_checkpointing=True, offload_checkpoints=True)
    _, _, logs, same = finished(offloaded)
    assert VARLEN in logs
    for a, b in zip(losses, same):
        assert abs(a - b) <= 0.02 * a, (losses, same)


@pytest.mark.parametrize("method", ["lora", "full"])
def test_fp16_trains_with_loss_scaling(tmp_path, small_vocab_model_dir, sample_data, method):
    """What GPUs without bf16 (RTX 20 series) get: fp16 weights (and fp32 adapters), the Trainer's loss scaling,
    which must unscale the gradients of fully fine-tuned fp16 weights too."""
    project = gpu_project(tmp_path, small_vocab_model_dir, sample_data, method=method, precision="fp16",
                          learning_rate=2e-5 if method == "full" else 2e-3)
    _, _, logs, losses = finished(project)
    assert f"Device: cuda, precision: fp16, method: {method}" in logs
    assert all(0 < loss < 20 for loss in losses)


@pytest.mark.parametrize("method, layer", [("qlora", "Linear4bit"), ("lora8bit", "Linear8bitLt")])
def test_quantized_bases_train_and_answer_on_cuda(tmp_path, small_vocab_model_dir, sample_data, method, layer):
    from studio.chat import HfChat

    project = gpu_project(tmp_path, small_vocab_model_dir, sample_data, method=method)
    run_dir, _, logs, losses = finished(project)
    assert f"Device: cuda, precision: bf16, method: {method}" in logs
    assert len(losses) == 4 and all(0 < loss < 20 for loss in losses)
    # The Test page's chat before export: the adapter on the base loaded as it was trained, on the GPU
    chat = HfChat(small_vocab_model_dir, run_dir / "adapter")
    q_proj = chat.model.get_base_model().model.layers[0].self_attn.q_proj.base_layer
    assert type(q_proj).__name__ == layer and q_proj.weight.device.type == "cuda"
    assert list(chat.stream([{"role": "user", "content": "Ahoy?"}], max_tokens=6))


def test_qlora_stops_saves_and_resumes(tmp_path, small_vocab_model_dir, sample_data):
    steps = 200  # a GPU runs a step of this model in milliseconds: room to stop before the end
    project = gpu_project(tmp_path, small_vocab_model_dir, sample_data, method="qlora", steps=steps,
                          gradient_checkpointing=True)
    run_dir = create_run(project)

    def stop_and_save(event):  # what the Train page's "Stop and save" does
        if event["type"] == "progress" and event["step"] >= 2:
            (run_dir / STOP_FILE).touch()

    _, final = run_training(run_dir=run_dir, on_event=stop_and_save)
    assert final["type"] == "done" and final["stopped"] and final["step"] < steps
    checkpoint = latest_checkpoint(run_dir)
    assert checkpoint is not None
    run_dir, final = run_training(run_dir=run_dir, resume=True)
    assert final["type"] == "done" and final["step"] == steps and not final["stopped"]
    saved_at = int(checkpoint.name.split("-")[1])
    resumed = [e["step"] for e in read_events(run_dir / "events.jsonl") if e["type"] == "progress" and e["step"] > saved_at]
    assert resumed[0] == saved_at + 1


def test_out_of_memory_is_caught_and_explained(tmp_path, small_vocab_model_dir):
    """A card too small for the run (a per-process limit makes the GPU a hundred MB one): the worker, run in
    this process so the limit applies to it, catches the error and says in words what to change, with the fix
    the app applies."""
    from studio.plan import estimate
    from studio.train.worker import EXIT_OOM, main

    rows = [{"messages": [{"role": "user", "content": f"Tell me a long tale, number {i}."},
                          {"role": "assistant", "content": "Arr, " + " ".join(["the sea be wide and deep"] * 60)}]}
            for i in range(64)]
    data = tmp_path / "long.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    project = gpu_project(tmp_path, small_vocab_model_dir, data, batch_size=8, max_seq_len=1024)
    run_dir = create_run(project)
    # room for the model, the packing check and cuBLAS's workspace, not for a step of 8 x 1024 tokens
    headroom = 96 * 2**20
    config = json.loads((small_vocab_model_dir / "config.json").read_text())
    assert estimate(config, project).reserved_bytes > 2 * headroom
    gc.collect()
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction((torch.cuda.memory_reserved() + headroom) / total)
    try:
        code = main([str(run_dir)])
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        gc.collect()
        torch.cuda.empty_cache()
    assert code == EXIT_OOM
    error = [e for e in read_events(run_dir / "events.jsonl") if e["type"] == "error"][-1]
    assert error["kind"] == "out_of_memory"
    assert error["message"].startswith("The GPU ran out of memory. To make it fit, halve the batch size to 4")
    assert error["fix"] == {"train.batch_size": 4, "train.grad_accumulation": 2}


def test_parity_reference_runs_on_cuda(small_vocab_model_dir):
    """The export's parity check runs the merged model on the GPU when there is one: same logits as the CPU."""
    from studio.export.parity import reference_model

    model, device = reference_model(small_vocab_model_dir)
    assert device == "cuda"
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    with torch.no_grad():
        on_gpu = model(ids.to(device)).logits.float().cpu()
        on_cpu = model.to("cpu")(ids).logits.float()
    assert torch.allclose(on_gpu, on_cpu, atol=1e-3, rtol=1e-3)


def test_gpu_detection_and_measured_peak():
    from studio.plan import detect_gpu, measured_peak

    gpu = detect_gpu()
    assert gpu.available and gpu.total_bytes >= gpu.free_bytes > 0 and gpu.name
    x = torch.ones(2**20, device="cuda")
    peak = measured_peak()
    assert peak["reserved_bytes"] >= peak["allocated_bytes"] >= x.numel() * 4
