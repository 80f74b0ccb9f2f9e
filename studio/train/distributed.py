"""Training on several GPUs at once: one worker process per GPU, the same project, one stream of events.

PyTorch's launcher (torchrun's elastic agent, `torch.distributed.run`) starts one `studio.train.worker` per
GPU and ends them all when one of them fails; inside each, the Hugging Face Trainer, through Accelerate,
wraps the model for data parallelism (DDP) or sharding (FSDP2), whichever the planner says fits
(studio.plan.multigpu). Around them the studio adds only what a person needs:
- which GPUs train (train.devices) and the command that starts them (`python -m studio.train.distributed`);
- process 0 alone writes events, checkpoints and the adapter;
- a stop asked for reaches every process at the same step;
- when a process fails or dies, the others are ended, and the launcher, which sees them all, writes one error
  event about the process that failed first (the others only fail after it): which one, why, what to do.

Without a GPU, a number in train.devices runs that many CPU processes talking over gloo: slow, but the same
path as on GPUs (the tests run it).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from studio.errors import ProjectError

LAUNCHER = "studio.train.distributed"
WORKER = "studio.train.worker"
# Expert override of the planner's choice, for this run's processes: "ddp" or "fsdp".
SHARDING_ENV = "FTSTUDIO_SHARDING"


# --- who am I --------------------------------------------------------------------------------------------
def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    """This process's GPU among the visible ones (torchrun numbers them per machine)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    return rank() == 0


# --- which GPUs, and the command -------------------------------------------------------------------------
def gpus_found(env: dict) -> int:
    """The GPUs a run may use: this computer's, or those CUDA_VISIBLE_DEVICES leaves visible."""
    from studio.plan.multigpu import gpu_count

    found = gpu_count()
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and found:
        found = min(found, len([v for v in visible.split(",") if v.strip() and v.strip() != "-1"]))
    return found


def processes_for(devices, found: int) -> tuple[int, list[int] | None]:
    """(processes, the GPU numbers a list named) for train.devices on a computer with `found` GPUs.
    Without GPUs a number means that many CPU processes. Raises ProjectError for GPUs that are not there."""
    if devices == "auto":
        from studio.plan.multigpu import gpus_to_use

        return gpus_to_use(devices, found), None
    if isinstance(devices, int):
        if found and devices > found:
            raise ProjectError(f"train.devices = {devices}, but this computer has {found} GPU"
                               f"{'s' if found > 1 else ''}: set it to \"auto\" or to at most {found}.")
        return devices, None
    if not found:
        raise ProjectError(f"train.devices = {devices} names GPUs, but no NVIDIA GPU was found: set it to "
                           "\"auto\".")
    missing = [d for d in devices if d >= found]
    if missing:
        raise ProjectError(f"train.devices = {devices} names GPU {missing[0]}, but this computer's GPUs are "
                           f"numbered 0 to {found - 1}.")
    return len(devices), list(devices)


def worker_command(run_dir: Path, command: list[str], env: dict) -> tuple[list[str], dict]:
    """The command and environment that start `command` (one studio.train.worker) as the project asks: as is
    for one process, under the launcher with one worker per GPU for several."""
    from studio.train.runs import load_run_project

    found = gpus_found(env)
    count, listed = processes_for(load_run_project(run_dir).train.devices, found)
    env = dict(env)
    if listed is not None:  # GPU numbers as nvidia-smi shows them
        env.update(CUDA_DEVICE_ORDER="PCI_BUS_ID", CUDA_VISIBLE_DEVICES=",".join(map(str, listed)))
    if count == 1:
        return command, env
    if not found:  # CPU processes share the cores instead of each taking all of them
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // count)))
    tail = command[command.index(WORKER) + 1:]  # RUN_DIR [--resume]
    return [sys.executable, "-m", LAUNCHER, "--processes", str(count)] + tail, env


# --- inside each worker ----------------------------------------------------------------------------------
def start(device: str) -> None:
    """Join the other processes (NCCL between GPUs, gloo between CPU processes); nothing for one process."""
    if world_size() > 1:
        from accelerate import PartialState

        PartialState(cpu=device == "cpu")  # the Trainer's arguments find and reuse it


def _barrier() -> None:
    import torch.distributed as dist

    dist.barrier()


def others_wait() -> None:
    """Every process but each machine's first waits here until that one has passed `first_done`: the model
    folder and the tokenized data are prepared once per machine, then read by the others."""
    if world_size() > 1 and local_rank() != 0:
        _barrier()


def first_done() -> None:
    if world_size() > 1 and local_rank() == 0:
        _barrier()


def _agree(value):
    """Process 0's value, on every process."""
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def stop_requested(asked: bool) -> bool:
    """True on every process at the same step once a stop was asked for (the STOP file is on the run folder,
    which a multi-machine run shares; process 0's look decides)."""
    return _agree(asked) if world_size() > 1 else asked


def share_work(project, model_dir: Path, events) -> bool:
    """Process 0 decides with the planner how the GPUs share the run (DDP, or FSDP when the whole model does
    not fit each GPU even with checkpointing) and every process applies it; True for FSDP."""
    if world_size() == 1:
        return False
    decision = None
    if is_main():
        from studio.plan.multigpu import WAYS, share_plan

        forced = os.environ.get(SHARDING_ENV) or None
        free = _smallest_free_gpu()
        try:
            config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
            plan = share_plan(config, project, world_size(), free, forced)
            decision = {"strategy": plan.strategy, "change": plan.change}
            need = f", about {plan.total_bytes / 2**30:.1f} GB per GPU" if free else ""
        except Exception:  # noqa: BLE001 - an architecture the planner cannot size trains data-parallel
            decision, need = {"strategy": forced or "ddp", "change": {}}, ""
        with_checkpointing = " with gradient checkpointing" if decision["change"] else ""
        events.emit("log", message=f"Training on {world_size()} {'GPUs' if free else 'processes'}, "
                                   f"{WAYS[decision['strategy']]}{with_checkpointing}{need}")
    decision = _agree(decision)
    if decision["change"].get("train.gradient_checkpointing"):
        project.train.gradient_checkpointing = True
    return decision["strategy"] == "fsdp"


def _smallest_free_gpu() -> int | None:
    """Free memory of the fullest GPU this run uses (NVML: no CUDA context on the others), None on the CPU."""
    import torch

    if not torch.cuda.is_available():
        return None
    from studio.plan.gpu import detect_gpu

    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    per_machine = int(os.environ.get("LOCAL_WORLD_SIZE", world_size()))
    indices = [int(v) for v in visible] if visible and all(v.isdigit() for v in visible) else range(per_machine)
    gpus = [detect_gpu(i) for i in list(indices)[:per_machine]]
    return min(g.free_bytes for g in gpus) if all(g.available for g in gpus) else None


def trainer_arguments(sharded: bool) -> dict:
    """TrainingArguments for a multi-process run: every parameter takes part in every step (no search for
    unused ones), the loss is divided by the targets of all processes, and for FSDP the settings the studio
    chooses: FSDP2, one unit per decoder block, checkpoints written as shards (each process its own, no
    process ever holds the whole model and optimizer state), and gradients shared out after every micro-batch,
    so accumulated gradients stay sharded."""
    if world_size() == 1:
        return {}
    arguments = {"ddp_find_unused_parameters": False, "average_tokens_across_devices": True}
    if sharded:
        arguments.update(
            fsdp=True,
            fsdp_config={"version": 2, "auto_wrap_policy": "TRANSFORMER_BASED_WRAP", "reshard_after_forward": True,
                         "state_dict_type": "SHARDED_STATE_DICT"},
            accelerator_config={"gradient_accumulation_kwargs": {"sync_each_batch": True}})
    return arguments


def save_result(trainer, model, tokenizer, out_dir: Path) -> None:
    """The adapter (or the whole model) and the tokenizer, written once, by process 0. Under FSDP every
    process first hands in its shard and process 0 receives the whole weights, in CPU memory."""
    state = None
    if trainer.is_fsdp_enabled:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        state = get_model_state_dict(trainer.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if is_main():
        model.save_pretrained(str(out_dir), **({"state_dict": state} if state is not None else {}))
        tokenizer.save_pretrained(str(out_dir))


class ProcessEvents:
    """The events of one process of a multi-process run. Process 0 writes them; the others write nothing. An
    error, from any process, goes to torchrun's error file for that process (TORCHELASTIC_ERROR_FILE): when one
    process fails the others fail after it (their partner is gone), so the launcher, which sees them all,
    reports the one that failed first."""

    def __init__(self, writer=None):
        self.writer = writer

    @property
    def reader_gone(self) -> bool:
        return self.writer is not None and self.writer.reader_gone

    def guard_output(self) -> None:
        if self.writer is not None:
            self.writer.guard_output()

    def emit(self, type_: str, step: int = 0, **fields) -> dict:
        target = os.environ.get("TORCHELASTIC_ERROR_FILE")
        if type_ == "error" and target:
            event = {"type": type_, "time": round(time.time(), 3), "step": step, **fields}
            Path(target).write_text(json.dumps({"message": json.dumps(event, default=str),
                                                "timestamp": int(time.time())}), encoding="utf-8")
            return event
        if self.writer is not None:
            return self.writer.emit(type_, step, **fields)
        return {"type": type_, "time": round(time.time(), 3), "step": step, **fields}

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def rank_events(path: Path):
    """The event writer of this process: the run's own for one process, else ProcessEvents."""
    from studio.train.events import EventWriter

    if world_size() == 1:
        return EventWriter(path)
    return ProcessEvents(EventWriter(path) if is_main() else None)


# --- the launcher ----------------------------------------------------------------------------------------
def root_cause(failures: dict) -> int:
    """The process whose failure ended the run, among torchrun's ProcessFailures by rank: one killed or crashed
    by a signal (the launcher itself ends the others with SIGTERM), else the first to record an error (to the
    millisecond), else the first torchrun saw."""
    signalled = [r for r, f in failures.items() if f.exitcode < 0 and f.exitcode != -15]
    if signalled:
        return min(signalled, key=lambda r: (failures[r].timestamp, r))
    recorded = {r: _recorded_event(f.message) for r, f in failures.items()}
    timed = [r for r, event in recorded.items() if event is not None]
    if timed:
        return min(timed, key=lambda r: (recorded[r].get("time", 0), r))
    return min(failures, key=lambda r: (failures[r].timestamp, r))


def explain_failure(failed_rank: int, processes: int, exit_code: int, recorded: str, project) -> dict:
    """The error event for a run whose process `failed_rank` ended with `exit_code` (`recorded`: what it
    wrote in its error file): which process, what it means, what to do."""
    from studio.train.worker import memory_fix

    gpu = _gpu_of(failed_rank)
    where = f"the process training on GPU {gpu}" if gpu is not None else \
        f"training process {failed_rank + 1} of {processes}"
    stopped = " The other processes were stopped with it"
    event = {"type": "error", "kind": "process_failed", "rank": failed_rank, "exit_code": exit_code}
    own = _recorded_event(recorded)
    if own is not None:  # the process's own words (the same error on every process needs no "where")
        event.update({k: v for k, v in own.items() if k not in ("type", "time", "step")})
        if failed_rank != 0:
            event["message"] = f"{own.get('message', '')} (In {where}.{stopped}.)"
        return event
    resume = f"{stopped}; resume continues from the last checkpoint."
    if exit_code == -9:
        how, fix = memory_fix(project, gpu=False)
        event.update(fix=fix, oom=True, message=(
            f"The system stopped {where} (SIGKILL). It does that when the computer runs out of memory (RAM), "
            f"or when the process is ended by hand.{resume} If memory ran out, {how}."))
    elif exit_code < 0:
        event["message"] = (f"{where[0].upper()}{where[1:]} crashed inside one of its libraries (signal "
                            f"{-exit_code}).{resume}")
    else:
        event["message"] = f"{where[0].upper()}{where[1:]} ended unexpectedly (exit code {exit_code}).{resume}"
    if recorded:
        event["details"] = recorded
    return event


def _gpu_of(failed_rank: int) -> int | None:
    import torch

    if not torch.cuda.is_available():
        return None
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    local = failed_rank % max(1, torch.cuda.device_count())
    return int(visible[local]) if local < len(visible) and visible[local].isdigit() else local


def _recorded_event(recorded) -> dict | None:
    try:
        event = json.loads(recorded) if isinstance(recorded, str) else None
    except ValueError:
        return None
    return event if isinstance(event, dict) and event.get("type") == "error" else None


def torchrun_arguments(args) -> list[str]:
    """torchrun's command line for the workers: one machine (a local rendezvous), or several meeting at
    --main-address, each started with the same command and its own --machine-rank."""
    out = ["--nproc-per-node", str(args.processes), "--max-restarts", "0"]
    if args.machines == 1:
        out.append("--standalone")
    else:
        out += ["--nnodes", str(args.machines), "--node-rank", str(args.machine_rank), "--rdzv-backend", "c10d",
                "--rdzv-endpoint", args.main_address, "--rdzv-id", args.run_dir.name]
    return out + ["--module", WORKER, str(args.run_dir)] + (["--resume"] if args.resume else [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {LAUNCHER}",
                                     description="Train a run folder with one worker process per GPU, on one "
                                                 "machine or several that share the folder.")
    parser.add_argument("run_dir", type=Path, nargs="?")
    parser.add_argument("--new-run", type=Path, metavar="PROJECT",
                        help="create a run folder for this project file, print it and stop")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--processes", type=int, help="worker processes on this machine (its GPUs)")
    parser.add_argument("--machines", type=int, default=1, help="machines training together")
    parser.add_argument("--machine-rank", type=int, default=0, help="this machine's number, 0 for the first")
    parser.add_argument("--main-address", default="", help="HOST:PORT of machine 0, where the machines meet")
    args = parser.parse_args(argv)
    if args.new_run:
        from studio.project import load_project
        from studio.train.runs import create_run

        print(create_run(load_project(args.new_run)))
        return 0
    if args.run_dir is None or not args.processes:
        parser.error("give RUN_DIR and --processes (or --new-run PROJECT to create a run folder)")
    args.run_dir = args.run_dir.resolve()
    if args.machines > 1 and not args.main_address:
        parser.error("--main-address HOST:PORT is needed when several machines train together")
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    from studio.train.events import EventWriter
    from studio.train.runs import EVENTS_FILE, load_run_project

    try:
        torchrun.run(torchrun.get_args_parser().parse_args(torchrun_arguments(args)))
        return 0
    except ChildFailedError as failure:
        failed_rank = root_cause(failure.failures)
        first = failure.failures[failed_rank]
        if args.machine_rank == 0:  # the machine whose process 0 reports the run
            event = explain_failure(failed_rank, args.processes * args.machines, first.exitcode, first.message,
                                    load_run_project(args.run_dir))
            writer = EventWriter(args.run_dir / EVENTS_FILE)
            writer.emit(event.pop("type"), event.pop("step", 0), **event)
            writer.close()
        return first.exitcode if first.exitcode > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
