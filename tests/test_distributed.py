"""Training on several GPUs, tested with several CPU processes talking over gloo: the same launcher, the same
worker, the same Trainer and Accelerate code as on GPUs, only the device and the wire differ.

The processes run the tiny model for a few steps. Dropout is 0 in these runs: each process draws its own
dropout masks, so with dropout the losses agree only statistically; without it one process and two agree to
the rounding of floating-point sums (tolerance: 1e-4 of the loss, 1e-3 of the gradient norm; seen here: about
1e-7). The tests marked `gpu` need two CUDA GPUs (NCCL, FSDP on GPUs, 4-bit weights under FSDP) and skip
elsewhere.
"""
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from studio.errors import ProjectError
from studio.plan import PlanSettings, estimate, gpu_from_numbers, shape_from_config, verdict
from studio.plan.estimator import ALLOCATOR_FIXED, ALLOCATOR_FRACTION, CUDA_CONTEXT
from studio.plan.fit import FITS
from studio.plan.multigpu import NCCL_BUFFERS, SharedEstimate, per_gpu_estimate, plan_on_gpus, same_kind, share_plan
from studio.project import Project, parse_devices, save_project
from studio.train.distributed import explain_failure, processes_for, torchrun_arguments
from studio.train.events import read_events
from studio.train.runs import latest_checkpoint

GiB = 1024 ** 3
LOSS_TOLERANCE = 1e-4  # relative: one process and two differ only in the order of floating-point sums
CPU_FSDP = Path(__file__).resolve().parent / "cpu_fsdp"  # lets Accelerate shard between CPU processes


def catalog_config(name):
    from studio.catalog import find
    return dict(find(name).config)


# --- the setting ------------------------------------------------------------------------------------------
def test_devices_setting_takes_auto_a_number_or_a_list(tmp_path):
    assert [parse_devices(v) for v in ("auto", " AUTO ", 2, "2", [0, 1], "[0, 1]", "1,3")] == \
        ["auto", "auto", 2, 2, [0, 1], [0, 1], [1, 3]]
    for bad in (0, -1, True, "two", [], [0, 0], [-1], "[0, x]", 1.5):
        with pytest.raises(ProjectError, match="train.devices"):
            parse_devices(bad)
    from studio.project import load_project
    for value in ("auto", 2, [1, 3]):
        p = Project()
        p.train.devices = value
        path = save_project(p, tmp_path / "p.ftproj.toml")
        assert load_project(path).train.devices == value
    (tmp_path / "bad.ftproj.toml").write_text('[train]\ndevices = "all of them"\n')
    with pytest.raises(ProjectError, match='devices = .all of them. must be "auto", a number'):
        load_project(tmp_path / "bad.ftproj.toml")
    # the app types text, and from a list back to "auto" (a list setting taking a single value)
    from studio.presets import apply_changes
    p = Project()
    apply_changes(p, {"train.devices": "[0, 1]"})
    assert p.train.devices == [0, 1]
    apply_changes(p, {"train.devices": "auto"})
    assert p.train.devices == "auto"


def test_which_processes_a_setting_starts():
    assert processes_for("auto", 0) == (1, None) and processes_for("auto", 4) == (4, None)
    assert processes_for(2, 4) == (2, None) and processes_for(2, 0) == (2, None)  # no GPU: CPU processes
    assert processes_for([1, 3], 4) == (2, [1, 3])
    with pytest.raises(ProjectError, match="this computer has 2 GPUs"):
        processes_for(4, 2)
    with pytest.raises(ProjectError, match="numbered 0 to 1"):
        processes_for([0, 2], 2)
    with pytest.raises(ProjectError, match="no NVIDIA GPU was found"):
        processes_for([0], 0)


def test_launcher_command_for_one_and_several_machines(tmp_path):
    import argparse
    one = argparse.Namespace(processes=2, machines=1, machine_rank=0, main_address="", run_dir=tmp_path, resume=True)
    assert torchrun_arguments(one) == ["--nproc-per-node", "2", "--max-restarts", "0", "--standalone",
                                       "--module", "studio.train.worker", str(tmp_path), "--resume"]
    two = argparse.Namespace(processes=4, machines=2, machine_rank=1, main_address="box0:29500", run_dir=tmp_path,
                             resume=False)
    args = torchrun_arguments(two)
    assert args[args.index("--nnodes") + 1] == "2" and args[args.index("--node-rank") + 1] == "1"
    assert args[args.index("--rdzv-endpoint") + 1] == "box0:29500" and "--standalone" not in args


def test_a_failed_process_is_explained_in_words():
    p = Project()
    killed = explain_failure(1, 2, -9, "Signal 9 (SIGKILL) received by PID 77", p)
    assert "training process 2 of 2" in killed["message"] and "other processes were stopped" in killed["message"]
    assert "out of memory (RAM)" in killed["message"] and killed["fix"] == {"train.batch_size": 2,
                                                                           "train.grad_accumulation": 2}
    own = {"type": "error", "message": "The GPU ran out of memory. To make it fit, halve the batch size.",
           "kind": "out_of_memory", "fix": {"train.batch_size": 2}}
    recorded = explain_failure(1, 2, 3, json.dumps(own), p)
    assert recorded["message"].startswith("The GPU ran out of memory") and "training process 2 of 2" in \
        recorded["message"] and recorded["fix"] == {"train.batch_size": 2} and recorded["kind"] == "out_of_memory"
    assert "exit code 7" in explain_failure(0, 2, 7, "", p)["message"]
    data_error = {"type": "error", "message": "chats.jsonl does not exist.", "kind": "DataError"}
    assert explain_failure(0, 2, 1, json.dumps(data_error), p)["message"] == "chats.jsonl does not exist."


def test_the_process_that_failed_first_is_the_one_explained():
    from types import SimpleNamespace as Failure  # the fields of torchrun's ProcessFailure that matter

    from studio.train.distributed import root_cause

    def recorded(seconds):
        return json.dumps({"type": "error", "time": seconds, "message": "..."})

    # process 1 was killed; process 0 then failed on the broken connection, in the same second
    assert root_cause({0: Failure(exitcode=1, timestamp=100, message=recorded(100.9)),
                       1: Failure(exitcode=-9, timestamp=100, message="Signal 9")}) == 1
    # two errors: the earlier one, to the millisecond; the launcher's own SIGTERMs never count
    assert root_cause({0: Failure(exitcode=1, timestamp=100, message=recorded(100.7)),
                       1: Failure(exitcode=1, timestamp=100, message=recorded(100.2)),
                       2: Failure(exitcode=-15, timestamp=99, message="Signal 15")}) == 1


# --- batches shared out -----------------------------------------------------------------------------------
def test_shares_hold_every_example_of_every_batch_once():
    from studio.data.tokenize import Example
    from studio.train.batching import PackedDataset
    from studio.train.rank_batches import BatchOrder, RankShares

    examples = [Example(input_ids=list(range(n)), labels=list(range(n))) for n in
                (90, 10, 60, 33, 5, 120, 64, 7, 80, 41, 12, 128)]
    packed = PackedDataset(examples, 256)
    shares = RankShares(packed, 2)
    assert len(shares) == 2 * len(packed)
    for b, batch in enumerate(packed.batches):
        parts = [shares[2 * b + r] for r in range(2)]
        got = sorted(len(f["input_ids"]) for part in parts for f in part)
        assert got == sorted(len(examples[i].input_ids) for i in batch)
        if len(batch) > 1:  # balanced: no share holds more than half the batch plus one example
            longest = max(len(examples[i].input_ids) for i in batch)
            assert max(sum(len(f["input_ids"]) for f in part) for part in parts) <= \
                sum(len(examples[i].input_ids) for i in batch) / 2 + longest
    # the batch order is the same for one process and two: one GPU's batch b is two GPUs' items 2b, 2b+1
    one, two = BatchOrder(len(packed), 1, 42), BatchOrder(len(packed), 2, 42)
    for order in (one, two):
        order.set_epoch(3)
    assert [i // 2 for i in list(two)[::2]] == list(one) and list(two)[1::2] == [i + 1 for i in list(two)[::2]]
    # a batch of one example leaves the other process one token with nothing to learn
    alone = RankShares(PackedDataset([Example(input_ids=[1, 2, 3], labels=[1, 2, 3])], 256), 2)
    assert alone[1] == [{"input_ids": [1], "labels": [-100]}]


# --- the planner, per GPU, against hand-computed totals ----------------------------------------------------
def test_full_fine_tuning_of_qwen_7b_sharded_over_two_gpus_hand_computed():
    """Qwen2.5-7B-Instruct, full fine-tuning in bf16 with AdamW, 2 x 1024 tokens per step, checkpointing."""
    cfg = catalog_config("Qwen2.5-7B-Instruct")
    h, I, L, V, H, K, d = 3584, 18944, 28, 152064, 28, 4, 128
    # q, k, v with their biases, o, the MLP and two norms
    per_layer = (h * H * d + H * d) + 2 * (h * K * d + K * d) + H * d * h + 3 * h * I + 2 * h
    P = 2 * V * h + L * per_layer + h  # untied embedding and head, final norm
    assert P == 7_615_616_512
    s = PlanSettings(method="full", batch_size=2, max_seq_len=1024, gradient_checkpointing=True, precision="bf16")
    fsdp = per_gpu_estimate(cfg, s, 2, "fsdp")
    # each GPU trains on one 1024-token row; the peak is the optimizer step, where nothing is gathered
    assert fsdp.peak_phase == "optimizer step" and fsdp.settings.batch_size == 2
    b = fsdp.breakdown
    assert b["weights"] == 2 * P // 2  # bf16 weights, half on each GPU
    assert b["gradients"] == 2 * P // 2  # every gradient exists at the step, sharded
    assert b["optimizer"] == 4 * P // 2  # AdamW's two bf16 moments, sharded
    ids = 3 * 8 * 1024  # token, label and position ids of one GPU's row
    assert b["workspace"] == 2 * P // 2 + ids  # foreach AdamW's temporary (one moment), made per shard
    assert b["gathered"] == 0 and b["activations"] == 0 and b["logits"] == 0
    assert b["communication"] == NCCL_BUFFERS
    # the allocator's share is the one-GPU estimate's at one row: 128 MiB + 8 % of what moves each step
    one_row_dynamic = (2 * P + ids) + 2 * P  # AdamW temporary + ids, and the gradients (no accumulation)
    assert b["allocator"] == int(ALLOCATOR_FIXED + ALLOCATOR_FRACTION * one_row_dynamic)
    total = P + P + 2 * P + (P + ids) + NCCL_BUFFERS + b["allocator"] + CUDA_CONTEXT
    assert fsdp.total_bytes == total
    assert round(total / GiB, 1) == 38.6  # per GPU; one GPU alone would need 73.8 GB
    # DDP would hold everything whole on each GPU, plus a bucket copy of every gradient: about 88 GB
    ddp = per_gpu_estimate(cfg, s, 2, "ddp")
    assert ddp.breakdown["communication"] == 2 * P + NCCL_BUFFERS
    assert ddp.total_bytes == (2 * P + 2 * P + 4 * P + (2 * P + ids) + (2 * P + NCCL_BUFFERS) + b["allocator"]
                               + CUDA_CONTEXT)
    # on two 80 GB GPUs the studio shards (DDP does not fit); a single one would need about 73.8 GB
    plan = share_plan(cfg, s, 2, 80 * GiB)
    assert plan.strategy == "fsdp" and plan.total_bytes == total and not plan.change


def test_lora_of_llama_3b_on_two_gpus_hand_computed():
    """Llama-3.2-3B-Instruct, LoRA r16 on all linear layers, 4 x 2048 tokens per step, no checkpointing."""
    cfg = catalog_config("Llama-3.2-3B-Instruct")
    h, I, L, V, H, K, d, r = 3072, 8192, 28, 128256, 24, 8, 128, 16
    P = V * h + L * (2 * h * H * d + 2 * h * K * d + 3 * h * I + 2 * h) + h  # tied head
    assert P == 3_212_749_824
    T = L * r * ((h + H * d) + 2 * (h + K * d) + (H * d + h) + 2 * (h + I) + (I + h))  # LoRA A and B
    assert T == 24_313_856
    s = PlanSettings(method="lora", rank=r, batch_size=4, max_seq_len=2048)
    one_gpu_half_batch = estimate(cfg, s.with_changes({"batch_size": 2}))  # each GPU's share: 2 x 2048 tokens
    ddp = per_gpu_estimate(cfg, s, 2, "ddp")
    assert ddp.breakdown["communication"] == 4 * T + NCCL_BUFFERS  # DDP's fp32 gradient buckets + NCCL
    assert ddp.total_bytes == one_gpu_half_batch.total_bytes + 4 * T + NCCL_BUFFERS
    fsdp = per_gpu_estimate(cfg, s, 2, "fsdp")
    b, one = fsdp.breakdown, one_gpu_half_batch.breakdown
    assert fsdp.peak_phase == "backward"
    assert b["weights"] == 2 * P // 2 and b["adapters"] == 4 * T // 2 and b["optimizer"] == 8 * T // 2
    root = 2 * (V * h + h)  # embedding (= head) and final norm, whole while the model computes
    block = (2 * P + 4 * T - root) // L  # one block's bf16 weights and fp32 adapters
    assert b["gathered"] == root + 2 * block + 4 * T // L  # + one block's adapter gradients before sharing out
    for key in ("activations", "logits", "workspace", "gradients", "allocator"):
        assert b[key] == one[key]  # the per-GPU batch's own, as on one GPU
    assert fsdp.total_bytes == (P + 2 * T + 4 * T + root + 2 * block + 4 * T // L + NCCL_BUFFERS + CUDA_CONTEXT
                                + one["activations"] + one["logits"] + one["workspace"] + one["gradients"]
                                + one["allocator"])
    # LoRA fits each GPU whole: data parallel, the faster way
    assert share_plan(cfg, s, 2, 24 * GiB).strategy == "ddp"


def test_the_verdict_offers_both_gpus_when_that_fits():
    cfg = catalog_config("Qwen2.5-7B-Instruct")
    s = PlanSettings(method="full", batch_size=2, max_seq_len=1024, gradient_checkpointing=True, precision="bf16")
    gpu = gpu_from_numbers("a 64 GB GPU", 64 * GiB)
    one = verdict(estimate(cfg, s), gpu, gpus=2)
    assert one.status == "does_not_fit"
    first = one.fixes[0]
    assert first.label.startswith("Train on all 2 GPUs") and "FSDP" in first.label
    assert first.change == {"train.devices": 2}
    assert first.new_total_bytes == per_gpu_estimate(cfg, s, 2, "fsdp").total_bytes <= FITS * gpu.free_bytes
    assert not any("GPUs" in f.label for f in verdict(estimate(cfg, s), gpu).fixes)  # one GPU: not offered
    # a project that trains on 2 GPUs is planned per GPU, and its fixes are too
    p = Project()
    p.method.method, p.train.batch_size, p.train.max_seq_len, p.train.devices = "full", 8, 4096, 2
    planned = plan_on_gpus(cfg, p, available=2, free_bytes=24 * GiB)
    assert isinstance(planned, SharedEstimate) and planned.gpus == 2
    v = verdict(planned, gpu_from_numbers("a 24 GB GPU", 24 * GiB), gpus=2)
    assert v.fixes and not any(f.change.get("train.devices") for f in v.fixes)
    for fix in v.fixes:
        assert fix.new_total_bytes == same_kind(planned, planned.settings.with_changes(fix.change)).total_bytes
    assert planned.to_dict()["strategy"] == planned.strategy
    assert not isinstance(plan_on_gpus(cfg, Project(), available=1, free_bytes=None), SharedEstimate)


def test_the_method_page_shows_the_gpus_setting_and_plans_per_gpu(qtbot, tmp_path, monkeypatch):
    pytest.importorskip("pytestqt")
    from PySide6.QtCore import QCoreApplication

    from ui.app import MainWindow
    from ui.pages.method import MethodPage
    from ui.widgets import plan_gpu

    QCoreApplication.setOrganizationName("Fine-Tune Studio tests")  # keep the user's own settings untouched
    monkeypatch.setattr(plan_gpu, "_choice", [])
    plan_gpu.set_planned_size("24")  # no GPU here: plan for 24 GB cards
    project = Project(name="gpus")
    project.path = tmp_path / "gpus.ftproj.toml"
    win = MainWindow(project)
    try:
        win.go_to(MethodPage)
        page = win.page(MethodPage)
        one = page.estimate.total_bytes
        devices = page.controls["train.devices"]
        devices.setCurrentText("2")  # typed: two such GPUs share the run
        assert win.studio.project.train.devices == 2
        assert isinstance(page.estimate, SharedEstimate) and page.estimate.gpus == 2
        assert page.estimate.total_bytes != one and "Per GPU, with 2 GPUs" in page.estimate.assumptions[0]
        devices.setCurrentText("[0, x]")  # a half-typed list changes nothing and says why
        assert win.studio.project.train.devices == 2 and "train.devices" in page.message.text()
        devices.setCurrentText("auto")
        assert win.studio.project.train.devices == "auto" and page.estimate.total_bytes == one
    finally:
        win.studio.dirty = False
        win.close()


# --- real runs: two CPU processes over gloo --------------------------------------------------------------
def make_project(folder, model, data, steps, devices, **train):
    project = Project(name="tiny")
    project.evaluate.after_training = project.evaluate.after_export = False  # checked in test_evaluate.py
    project.model.name = str(model)
    project.data.train_file = str(data)
    project.method.dropout = 0.0  # each process draws its own masks: see the module docstring
    project.train.max_steps = steps
    project.train.batch_size = 4
    project.train.max_seq_len = 128
    project.train.learning_rate = 1e-3
    project.train.eval_steps = 3
    project.train.save_steps = 100
    project.train.devices = devices
    for key, value in train.items():
        setattr(project.train, key, value)
    folder.mkdir(parents=True, exist_ok=True)
    save_project(project, folder / "tiny.ftproj.toml")
    return project


def logged(run_dir, kind="metrics", key="loss"):
    """{step: value} of a run's events, the last value of a step winning (a resumed run replays steps)."""
    return {e["step"]: e[key] for e in read_events(run_dir / "events.jsonl") if e["type"] == kind}


def assert_close(got: dict, want: dict, tolerance=LOSS_TOLERANCE):
    assert got.keys() == want.keys()
    for step in want:
        assert abs(got[step] - want[step]) <= tolerance * abs(want[step]), (step, got[step], want[step])


@pytest.fixture(scope="module")
def one_process_run(tmp_path_factory, tiny_model_dir):
    """The reference: one process, six steps; what every two-process run must reproduce."""
    from studio.train import run_training

    data = Path(__file__).resolve().parent.parent / "resources" / "samples" / "pirate_chat.jsonl"
    project = make_project(tmp_path_factory.mktemp("one"), tiny_model_dir, data, steps=6, devices=1)
    run_dir, final = run_training(project)
    assert final["type"] == "done", final
    return run_dir


@pytest.mark.slow
def test_two_processes_train_like_one_and_write_events_once(tmp_path, tiny_model_dir, sample_data, one_process_run):
    from studio.train import run_training

    project = make_project(tmp_path, tiny_model_dir, sample_data, steps=6, devices=2)
    seen = []
    run_dir, final = run_training(project, on_event=seen.append)
    assert final["type"] == "done" and final["step"] == 6, final
    # the same global batch and schedule: the same losses, gradient norms and held-out losses step by step
    assert_close(logged(run_dir), logged(one_process_run))
    assert_close(logged(run_dir, key="grad_norm"), logged(one_process_run, key="grad_norm"), 1e-3)
    assert_close(logged(run_dir, "eval", "eval_loss"), logged(one_process_run, "eval", "eval_loss"))
    events = list(read_events(run_dir / "events.jsonl"))
    # written once, by process 0: every step's metrics once, one start, one end, and what the reader saw
    assert [e["step"] for e in events if e["type"] == "metrics"] == [1, 2, 3, 4, 5, 6]
    assert sum(e["type"] == "done" for e in events) == 1
    assert sum(e.get("message", "").startswith("Device:") for e in events) == 1
    assert any("Training on 2 processes, data parallel (DDP)" in e.get("message", "") for e in events)
    assert [e for e in seen if not e.get("raw")] == events
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_two_processes_stop_save_and_resume(tmp_path, tiny_model_dir, sample_data, one_process_run):
    from studio.train import run_training, start_training

    project = make_project(tmp_path, tiny_model_dir, sample_data, steps=6, devices=2)
    proc = start_training(project)
    for event in proc.events():
        if event["type"] == "progress" and event["step"] >= 2:
            proc.request_stop()  # one file in the run folder; both processes stop at the same step
        if event["type"] == "done":
            assert event["stopped"] and event["step"] < 6
    assert proc.returncode == 0
    checkpoint = latest_checkpoint(proc.run_dir)
    assert checkpoint is not None and (proc.run_dir / "adapter").is_dir()
    assert {p.name for p in checkpoint.glob("rng_state_*.pth")} == {"rng_state_0.pth", "rng_state_1.pth"}
    run_dir, final = run_training(run_dir=proc.run_dir, resume=True)
    assert final["type"] == "done" and final["step"] == 6 and not final["stopped"]
    # the resumed run continues with the batches and learning rates the uninterrupted one had
    assert_close(logged(run_dir), logged(one_process_run))


def _worker_pid(launcher_pid: int, rank: int) -> int | None:
    """The pid of the worker process of `rank` under the launcher (Linux: /proc)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            environ = (stat.parent / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if parent == launcher_pid and f"RANK={rank}".encode() in environ:
            return int(stat.parent.name)
    return None


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the worker processes in /proc")
def test_a_killed_process_ends_the_others_and_is_explained(tmp_path, tiny_model_dir, sample_data):
    from studio.train import start_training

    project = make_project(tmp_path, tiny_model_dir, sample_data, steps=200, devices=2)
    proc = start_training(project)
    killed, seen = None, []
    for event in proc.events():
        seen.append(event)
        if event["type"] == "progress" and event["step"] >= 1 and killed is None:
            first, killed = _worker_pid(proc.process.pid, 0), _worker_pid(proc.process.pid, 1)
            os.kill(killed, signal.SIGKILL)  # what the kernel does when RAM runs out
    assert killed is not None and proc.returncode not in (0, None)
    final = [e for e in seen if e["type"] in ("done", "error")]
    assert len(final) == 1 and final[0]["type"] == "error", final
    message = final[0]["message"]
    assert "training process 2 of 2" in message and "SIGKILL" in message
    assert "other processes were stopped" in message and "resume continues" in message
    assert final[0]["fix"] and final[0]["rank"] == 1
    on_disk = [e for e in read_events(proc.run_dir / "events.jsonl") if e["type"] in ("done", "error")]
    assert on_disk == final  # the explanation is in the run's record too, once
    assert not _alive(first)  # process 0 did not outlive it


@pytest.mark.slow
def test_fsdp_shards_between_two_processes(tmp_path, tiny_model_dir, sample_data, one_process_run, monkeypatch):
    """FSDP2 (torch's fully_shard, prepared by Accelerate) through the studio's own launcher and worker."""
    from studio.train import run_training

    monkeypatch.setenv("FTSTUDIO_SHARDING", "fsdp")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(CPU_FSDP), os.environ.get("PYTHONPATH", "")]))
    project = make_project(tmp_path, tiny_model_dir, sample_data, steps=3, devices=2, gradient_checkpointing=True,
                           save_steps=3)
    run_dir, final = run_training(project)
    assert final["type"] == "done" and final["step"] == 3, final
    events = list(read_events(run_dir / "events.jsonl"))
    assert any("sharded (FSDP)" in e.get("message", "") for e in events)
    # the checkpoint is sharded: one file per process, no process held the whole model and optimizer state
    checkpoint = latest_checkpoint(run_dir)
    assert sorted(p.name for p in (checkpoint / "pytorch_model_fsdp_0").glob("*.distcp")) == \
        ["__0_0.distcp", "__1_0.distcp"]
    # the first two steps' losses do not depend on the schedule's length: the same as one process's
    reference = logged(one_process_run)
    assert_close({k: v for k, v in logged(run_dir).items() if k <= 2}, {1: reference[1], 2: reference[2]})
    from safetensors.torch import load_file
    whole = load_file(run_dir / "adapter" / "adapter_model.safetensors")
    assert whole.keys() == load_file(one_process_run / "adapter" / "adapter_model.safetensors").keys()
    assert all(tensor.isfinite().all() for tensor in whole.values())


# --- on two or more GPUs (bench/gpu_check runs every gpu test) -------------------------------------------
def _cuda_devices() -> int:
    import torch
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


needs_two_gpus = pytest.mark.skipif("_cuda_devices() < 2", reason="needs two CUDA GPUs")


@pytest.mark.gpu
@needs_two_gpus
def test_ddp_on_two_gpus_trains_like_one(tmp_path, tiny_model_dir, sample_data):
    """NCCL, each process on its own GPU, rank 0's memory event against the per-GPU plan."""
    from studio.train import run_training

    runs = {}
    for devices in (1, 2):
        project = make_project(tmp_path / str(devices), tiny_model_dir, sample_data, steps=6, devices=devices,
                               precision="fp32")
        runs[devices], final = run_training(project)
        assert final["type"] == "done", final
    assert_close(logged(runs[2]), logged(runs[1]))
    memory = [e for e in read_events(runs[2] / "events.jsonl") if e["type"] == "memory"]
    assert memory and memory[0]["reserved_bytes"] > 0


@pytest.mark.gpu
@needs_two_gpus
@pytest.mark.parametrize("method", ["lora", "qlora", "full"])
def test_fsdp_on_two_gpus(tmp_path, tiny_model_dir, sample_data, monkeypatch, method):
    """FSDP2 on GPUs: bf16 weights, 4-bit weights stored as bf16 for sharding (QLoRA), and full fine-tuning."""
    from studio.train import run_training

    monkeypatch.setenv("FTSTUDIO_SHARDING", "fsdp")
    project = make_project(tmp_path, tiny_model_dir, sample_data, steps=3, devices=2, save_steps=3)
    project.method.method = method
    save_project(project)
    run_dir, final = run_training(project)
    assert final["type"] == "done", final
    assert (latest_checkpoint(run_dir) / "pytorch_model_fsdp_0").is_dir()
    run_dir, final = run_training(run_dir=run_dir, resume=True)
    assert final["type"] == "done" and final["step"] == 3
