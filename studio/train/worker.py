"""The training recipe, run as its own process: `python -m studio.train.worker RUN_DIR [--resume]`.

It reads top to bottom: load the frozen project, tokenize the data, load the model (16-bit, 8-bit or 4-bit),
wrap it with LoRA/DoRA unless fully fine-tuning, train with the Hugging Face Trainer, save the result.
Everything the user should see goes out as events (studio.train.events); a failure becomes an `error` event
in plain words with the fix the app can apply, and a non-zero exit code.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import signal
import sys
import time
import traceback
from pathlib import Path

from studio.errors import StudioError, TrainError
from studio.fileio import Busy, disk_full_message, is_disk_full
from studio.train import distributed
from studio.train.events import EventWriter
from studio.train.runs import (EVENTS_FILE, STOP_FILE, latest_checkpoint, load_run_project, record_lost_end,
                               remove_incomplete_checkpoints, training_lock)

EXIT_OK, EXIT_ERROR, EXIT_OOM = 0, 1, 3


def pick_device_and_precision(project):
    """("cuda" or "cpu", "bf16" / "fp16" / "fp32"). On a CPU fp32 unless the project asks for bf16: most CPUs
    have no fast 16-bit matrix units, so fp32 is both faster and exact there, but bf16 is what GPU users
    train in, and asking for it on a CPU runs exactly that path (slowly). fp16 needs a GPU's loss scaling."""
    import torch

    wanted = project.train.precision
    if torch.cuda.is_available():
        if wanted == "auto":
            wanted = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "cuda", wanted
    return "cpu", "bf16" if wanted == "bf16" else "fp32"


def base_loading(method: str, device: str, dtype, sharded: bool = False, trust_remote_code: bool = False) -> dict:
    """How the base model is loaded for a method, as from_pretrained arguments: the dtype, and for QLoRA
    (4-bit NF4 with double quantization) and 8-bit LoRA the bitsandbytes settings and the device to quantize
    on. Training, and the Test page's chat with a trained adapter, load the base the same way."""
    import torch

    kwargs = {"dtype": dtype, "trust_remote_code": trust_remote_code}
    if method in ("qlora", "lora8bit") and importlib.util.find_spec("bitsandbytes") is None:
        raise TrainError(f"{'QLoRA' if method == 'qlora' else '8-bit LoRA'} needs the bitsandbytes library, which "
                         "is not installed (it has no build for Intel Macs). Choose LoRA, which needs no extra "
                         "library.")
    if method == "qlora":
        from transformers import BitsAndBytesConfig
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
            bnb_4bit_quant_storage=dtype if sharded else torch.uint8)  # FSDP shards 4-bit codes as 16-bit values
    elif method == "lora8bit":
        import logging

        from transformers import BitsAndBytesConfig
        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        # bitsandbytes logs at every 8-bit multiplication (outside training: the packing check, the Test page's
        # chat) that it casts the input to fp16 to quantize it, its module's only log line: expected, and a
        # line per layer per token would bury the log
        logging.getLogger("bitsandbytes.autograd._functions").setLevel(logging.ERROR)
    if device == "cuda" and not sharded:  # FSDP loads on the CPU and hands each GPU its shard
        kwargs["device_map"] = {"": distributed.local_rank()}  # one process per GPU: its own
    elif device == "cpu" and "quantization_config" in kwargs:  # bitsandbytes quantizes on the CPU when told to
        kwargs["device_map"] = {"": "cpu"}
    return kwargs


class StopRequests:
    """Why the worker should save and stop: the STOP file (asked for before or during training), a reader
    that went away (the window or CLI reading our output ended), or a hang-up/interrupt signal."""

    def __init__(self, run_dir: Path, events: EventWriter):
        self.stop_file, self.events, self.signalled = run_dir / STOP_FILE, events, False
        for name in ("SIGINT", "SIGHUP"):
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), self._on_signal)

    def _on_signal(self, signum, frame) -> None:
        self.signalled = True

    def __bool__(self) -> bool:
        return self.signalled or self.events.reader_gone or self.stop_file.exists()


def not_finite(value) -> bool:
    return isinstance(value, (int, float)) and not math.isfinite(value)


def weights_finite(model) -> bool:
    import torch

    return all(bool(torch.isfinite(p).all()) for p in model.parameters() if p.requires_grad)


def explain_nan(project, step: int, first: bool) -> tuple[str, dict]:
    """Plain words for a loss that is not a number, with the likely cause and the change the app can apply."""
    t = project.train
    lead = (f"Training stopped at step {step}: the loss became NaN (not a number), so the model was no longer "
            "learning anything and nothing from this point was saved.")
    if first:
        return (f"{lead} It was not a number from the first step, so the base model's weights or its 16-bit "
                "precision overflow; try train.precision = \"fp32\" (or bf16 instead of fp16), or check the "
                "model folder.", {"train.precision": "fp32"} if t.precision != "fp32" else {})
    lower = float(f"{t.learning_rate / 10:.1g}")
    return (f"{lead} The usual cause is a learning rate too high for this model ({t.learning_rate:g}); lower it "
            f"to {lower:g} and train again (Resume would start from the last good checkpoint).",
            {"train.learning_rate": lower})


def load_model(project, model_dir: Path, device: str, precision: str, sharded: bool = False):
    import torch
    from transformers import AutoModelForCausalLM

    from studio.train import attention

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]
    method = project.method.method
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    kwargs = {**base_loading(method, device, dtype, sharded, project.model.trust_remote_code),
              "attn_implementation": attention.pick(project, device, dtype, config)}
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), **kwargs)
    # No prepare_model_for_kbit_training: it upcasts the embeddings and output head to fp32, which costs
    # gigabytes on 150k-vocabulary models; bf16 compute with LoRA in fp32 trains stably without it (and the
    # memory planner assumes exactly this).
    if method == "full":
        return model
    from peft import LoraConfig, get_peft_model

    targets = project.method.target_modules
    lora = LoraConfig(
        r=project.method.rank, lora_alpha=project.method.alpha, lora_dropout=project.method.dropout,
        target_modules="all-linear" if targets == ["all-linear"] else targets,
        use_dora=(method == "dora"), task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def planned_reserved_bytes(project, model_dir: Path, sharded: bool = False) -> int | None:
    """The planner's estimate of peak reserved memory (of each GPU, on several), to show beside the measured one."""
    from studio.plan import estimate
    from studio.plan.multigpu import per_gpu_estimate
    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        if distributed.world_size() > 1:
            way = "fsdp" if sharded else "ddp"
            return per_gpu_estimate(config, project, distributed.world_size(), way).reserved_bytes
        return estimate(config, project).reserved_bytes
    except Exception:  # noqa: BLE001 - an unknown architecture must not stop training
        return None


def fit_checkpointing(project, model_dir: Path, events: EventWriter, gpu=None) -> None:
    """Turn gradient checkpointing on, then its CPU offload, when the planner says the run would not fit the
    GPU's free memory otherwise. Only ever turns them on: a run that fits keeps the faster settings."""
    from studio.plan import PlanSettings, detect_gpu, estimate
    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        gpu = gpu or detect_gpu()
        settings = PlanSettings.from_project(project)
        need = estimate(config, settings).total_bytes
    except Exception:  # noqa: BLE001 - an unknown architecture or GPU query must not stop training
        return
    if not gpu.available or need <= gpu.free_bytes:
        return
    t = project.train
    for change in ({"gradient_checkpointing": True}, {"gradient_checkpointing": True, "offload_checkpoints": True}):
        trial = estimate(config, settings.with_changes(change)).total_bytes
        if trial <= gpu.free_bytes or change.get("offload_checkpoints"):
            t.gradient_checkpointing = True
            t.offload_checkpoints = bool(change.get("offload_checkpoints")) or t.offload_checkpoints
            what = "gradient checkpointing" + (" with CPU offload" if t.offload_checkpoints else "")
            events.emit("log", message=f"The run needs about {need / 2**30:.1f} GB but {gpu.free_bytes / 2**30:.1f} GB "
                                       f"are free: turning on {what} (about {trial / 2**30:.1f} GB)")
            return


def make_callback(events: EventWriter, run_dir: Path, total_steps: int, estimate_bytes: int | None,
                  stop: StopRequests | None = None):
    from transformers import TrainerCallback

    from studio.plan import measured_peak

    stop = stop if stop is not None else StopRequests(run_dir, events)

    class EventCallback(TrainerCallback):
        """Turns the Trainer's hooks into our events, honours stop requests between steps, and stops the
        run, saving nothing more, when the loss or the weights stop being numbers."""

        def __init__(self):
            self.started = time.time()
            self.start_step = 0
            self.start_tokens = 0
            self.memory_reported = False
            self.not_a_number_at: int | None = None  # the step at which the loss or gradient became NaN/inf
            self.nan_from_start = False  # ...and it did so at the first logged step
            self.first_logged = True

        def on_train_begin(self, args, state, control, **kw):
            self.started = time.time()
            self.start_step = state.global_step  # non-zero when resuming
            self.start_tokens = state.num_input_tokens_seen
            events.emit("progress", state.global_step, total_steps=total_steps, fraction=state.global_step / total_steps,
                        eta_s=None, message="Training started")

        def on_step_end(self, args, state, control, **kw):
            elapsed = max(1e-6, time.time() - self.started)
            done = state.global_step - self.start_step
            eta = elapsed / done * (total_steps - state.global_step) if done else None
            events.emit("progress", state.global_step, total_steps=total_steps,
                        fraction=state.global_step / total_steps, eta_s=eta,
                        tokens_per_s=(state.num_input_tokens_seen - self.start_tokens) / elapsed,
                        tokens_seen=state.num_input_tokens_seen)
            if not self.memory_reported and done >= 2:
                peak = measured_peak()
                if peak:
                    events.emit("memory", state.global_step, estimate_bytes=estimate_bytes, **peak)
                self.memory_reported = True
            asked = distributed.stop_requested(bool(stop))  # on every process, every step: they must agree
            if control.should_save and self.not_a_number_at is None and not weights_finite(kw["model"]):
                self.not_a_number_at = state.global_step  # never a checkpoint of broken weights
            if self.not_a_number_at is not None:
                control.should_save = False
                control.should_training_stop = True
            elif asked:
                events.emit("log", state.global_step, message="Stop requested: saving a checkpoint and stopping")
                control.should_save = True
                control.should_training_stop = True
            return control

        def on_log(self, args, state, control, logs=None, **kw):
            logs = dict(logs or {})
            if "eval_loss" in logs:
                events.emit("eval", state.global_step, eval_loss=logs["eval_loss"], epoch=logs.get("epoch"))
            elif "loss" in logs:
                events.emit("metrics", state.global_step, loss=logs["loss"], lr=logs.get("learning_rate"),
                            grad_norm=logs.get("grad_norm"), epoch=logs.get("epoch"))
                if not_finite(logs["loss"]) or not_finite(logs.get("grad_norm")):
                    self.not_a_number_at = state.global_step
                    self.nan_from_start = self.first_logged
                    control.should_save = False
                    control.should_training_stop = True
                self.first_logged = False
            return control

        def on_save(self, args, state, control, **kw):
            ckpt = latest_checkpoint(run_dir)
            events.emit("checkpoint", state.global_step, path=str(ckpt) if ckpt else None)

    return EventCallback()


def train(run_dir: Path, resume: bool, events: EventWriter) -> int:
    import torch
    from transformers import AutoTokenizer

    from studio.data import prepare_dataset
    from studio.models import resolve_model
    from studio.train.trainer import build_trainer

    from studio.models import check_remote_code
    from studio.power import keep_awake

    stop = StopRequests(run_dir, events)  # a stop asked for while we load still counts
    project = load_run_project(run_dir)
    device, precision = pick_device_and_precision(project)
    distributed.start(device)
    events.emit("log", message=f"Device: {device}, precision: {precision}, method: {project.method.method}")
    distributed.others_wait()  # one process per machine fills the model and data caches, then the others read
    if device == "cpu":
        from studio.plan.advice import cpu_notes
        for note in cpu_notes(project.method.method, project.train.precision):
            events.emit("log", message=note)

    model_dir = resolve_model(project.model.name, lambda msg, frac: events.emit("log", message=msg))
    check_remote_code(model_dir, project.model.trust_remote_code)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=project.model.trust_remote_code)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    data = prepare_dataset(project, tokenizer, lambda msg, frac: events.emit("log", message=f"{msg} {frac:.0%}"))
    events.emit("log", message=f"Data: {len(data.train)} training and {len(data.eval)} evaluation examples, "
                               f"{data.train_tokens} training tokens, {len(data.skipped)} rows skipped")
    for row, reason in data.skipped[:20]:
        events.emit("log", message=f"Skipped row {row}: {reason}")
    distributed.first_done()

    sharded = distributed.share_work(project, model_dir, events)  # several GPUs: DDP or FSDP, as fits
    if device == "cuda" and distributed.world_size() == 1:
        fit_checkpointing(project, model_dir, events)
    torch.manual_seed(project.train.seed)
    model = load_model(project, model_dir, device, precision, sharded)
    packing = project.train.packing
    trainer, total = build_trainer(project, model, data.train, data.eval, tokenizer.pad_token_id, device, precision,
                                   run_dir / "checkpoints", sharded=sharded)
    if packing and not project.train.packing:
        events.emit("log", message="Packing is off for this model: examples packed in one row could see each "
                                   "other, so batches are padded instead (slower, same result)")
    callback = make_callback(events, run_dir, total, planned_reserved_bytes(project, model_dir, sharded), stop)
    trainer.add_callback(callback)
    from studio.train.attention import describe
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    events.emit("log", message=describe(getattr(base.config, "_attn_implementation", None)))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    batching = (f"packed batches of up to {project.train.batch_size * project.train.max_seq_len} tokens"
                if project.train.packing else f"padded batches of {project.train.batch_size} examples")
    events.emit("log", message=f"Training {trainable:,} parameters for {total} steps, {batching}, "
                               f"{'chunked' if trainer.lean else 'full-logit'} loss")
    for step in remove_incomplete_checkpoints(run_dir):
        events.emit("log", message=f"The checkpoint at step {step} was cut short while it was being saved "
                                   "(the process was stopped then); it was removed")
    checkpoint = latest_checkpoint(run_dir) if resume else None
    if resume and checkpoint is None:
        events.emit("log", message="No checkpoint to resume from; starting from the beginning")
    if stop:
        events.emit("done", 0, stopped=True, output=None, final_loss=None, total_steps=total,
                    message="Stopped before training began; nothing was trained or saved")
        (run_dir / STOP_FILE).unlink(missing_ok=True)
        return EXIT_OK
    with keep_awake(f"Training {project.name}") as awake:
        events.emit("log", message=awake)
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)

    if callback.not_a_number_at is not None or not weights_finite(model):
        step = callback.not_a_number_at or trainer.state.global_step
        message, fix = explain_nan(project, step, callback.nan_from_start)
        last_good = latest_checkpoint(run_dir)
        if last_good is not None:
            message += f" The last good checkpoint is at step {last_good.name.split('-')[-1]}."
        events.emit("error", step, message=message, kind="not_a_number", fix=fix)
        return EXIT_ERROR
    stopped = bool(stop)
    out_dir = run_dir / ("model" if project.method.method == "full" else "adapter")
    distributed.save_result(trainer, model, tokenizer, out_dir)
    final_loss = next((h["loss"] for h in reversed(trainer.state.log_history) if "loss" in h), None)
    events.emit("done", trainer.state.global_step, stopped=stopped, output=str(out_dir), final_loss=final_loss,
                total_steps=total)
    if distributed.is_main():
        (run_dir / STOP_FILE).unlink(missing_ok=True)
    if project.evaluate.after_training and not stopped:
        if distributed.world_size() > 1:  # the check runs on one process: the Results page or `ftstudio eval`
            events.emit("log", message="The check after training runs on one process: start it from the "
                                       "Results page (Check this run) or with `ftstudio eval`.")
            return EXIT_OK
        from studio.evaluate import evaluate_in_worker

        del trainer  # its optimizer state is not needed to check the model
        evaluate_in_worker(run_dir, model, tokenizer, events, stop)
    return EXIT_OK


def explain_oom(project) -> tuple[str, dict]:
    """Plain words for an out-of-memory error, and the change the app can apply."""
    how, fix = memory_fix(project)
    return f"The GPU ran out of memory. To make it fit, {how}.", fix


def memory_fix(project, gpu: bool = True) -> tuple[str, dict]:
    """The cheapest change that needs less memory, in words ("halve the batch size ...") and as settings.
    For the computer's own memory (gpu=False) offloading to it or a 4-bit GPU format would not help."""
    t = project.train
    if t.batch_size > 1:
        fix = {"train.batch_size": max(1, t.batch_size // 2), "train.grad_accumulation": t.grad_accumulation * 2}
        how = (f"halve the batch size to {fix['train.batch_size']} and double gradient accumulation to "
               f"{fix['train.grad_accumulation']} (same effective batch, less memory)")
    elif not t.gradient_checkpointing:
        fix, how = {"train.gradient_checkpointing": True}, "turn on gradient checkpointing (about 30% slower)"
    elif gpu and not t.offload_checkpoints:
        fix, how = ({"train.offload_checkpoints": True},
                    "keep the checkpointed activations in CPU memory (offload checkpoints; a little slower)")
    elif gpu and project.method.method in ("full", "lora", "dora"):
        fix, how = {"method.method": "qlora"}, "switch to QLoRA, which stores the model in 4 bits"
    else:
        fix = {"train.max_seq_len": max(128, t.max_seq_len // 2)}
        how = f"shorten the sequence-length cutoff to {fix['train.max_seq_len']} tokens"
    return how, fix


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studio.train.worker")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    run_dir = args.run_dir.resolve()
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Lets the CUDA allocator grow segments instead of fragmenting on varied sequence lengths.
    os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    with contextlib.ExitStack() as held:
        try:
            if distributed.is_main():  # process 0 holds the run for all of a multi-GPU run's processes
                held.enter_context(training_lock(run_dir))
        except Busy as exc:  # said on stdout only: the run's events belong to the process training it
            EventWriter(None).emit("error", message=str(exc), kind="busy")
            return EXIT_ERROR
        events = distributed.rank_events(run_dir / EVENTS_FILE)  # process 0 reports a multi-GPU run
        events.guard_output()
        if distributed.is_main():
            record_lost_end(run_dir)  # no-op unless the previous process was killed before it could say so
            events.emit("start", pid=os.getpid(), resume=args.resume)
        try:
            return train(run_dir, args.resume, events)
        except StudioError as exc:
            events.emit("error", message=str(exc), kind=type(exc).__name__)
            return EXIT_ERROR
        except Exception as exc:  # noqa: BLE001 - every failure must reach the user as an event
            import torch
            if isinstance(exc, torch.OutOfMemoryError):
                message, fix = explain_oom(load_run_project(run_dir))
                events.emit("error", message=message, kind="out_of_memory", fix=fix)
                return EXIT_OOM
            if is_disk_full(exc):
                events.emit("error", message=disk_full_message(run_dir, "the checkpoint or the trained weights"),
                            kind="disk_full")
                return EXIT_ERROR
            events.emit("error", message=f"Training stopped with an unexpected error: {exc}",
                        kind=type(exc).__name__, traceback=traceback.format_exc())
            return EXIT_ERROR
        finally:
            events.close()


if __name__ == "__main__":
    sys.exit(main())
