"""GPU memory per GPU when one run trains on several GPUs, and which way of sharing the work makes it fit.

Two ways, both run by the Hugging Face Trainer through Accelerate (studio.train.distributed):
- DDP (data parallel): every GPU holds the whole model, every gradient and the whole optimizer state, and
  trains on its share of each batch (batch_size / N rows' worth of tokens). On top, DDP keeps a bucket copy
  of every gradient for the all-reduce, and NCCL its communication buffers.
- FSDP (fully sharded, FSDP2): weights, gradients and optimizer state are split N ways, and so is AdamW's
  step temporary. While a block computes it is gathered whole, and the next one is gathered ahead, so two
  blocks are whole at a time; the embeddings, the output head and the final norm (the root unit) stay whole
  through the forward and backward passes; a block's gradient is whole until it is reduce-scattered. With
  gradient accumulation every micro-batch reduce-scatters (sync_each_batch), so accumulated gradients stay
  sharded too. The optimizer step gathers nothing.

Both start from the one-GPU estimate at the per-GPU batch (studio.plan.estimator) and change its itemized
parts. The peak is taken in the phase (backward or optimizer step) where the one-GPU estimate has it: the
breakdown itemizes that phase only, and sharding shrinks the optimizer step more than the backward pass, so
an FSDP run whose one-GPU peak is the optimizer step may in fact peak in the backward pass (then a little
higher than estimated; bench/gpu_check measures it).
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from studio.plan.estimator import GiB, MiB, Estimate, PlanSettings, as_settings, estimate
from studio.plan.shapes import Shape, shape_from_config

STRATEGIES = ("ddp", "fsdp")
# NCCL's own buffers on each GPU (outside PyTorch's allocator); a typical figure for two GPUs, to be measured
# on a machine that has them (tests/test_distributed.py's gpu tests).
NCCL_BUFFERS = 256 * MiB
LABELS = {"gathered": "Blocks gathered whole while they compute (FSDP)",
          "communication": "Communication buffers between the GPUs"}
WAYS = {"ddp": "data parallel (DDP): each GPU holds the whole model and trains on its share of every batch",
        "fsdp": "sharded (FSDP): the model, its gradients and the optimizer state are split across the GPUs"}
CHECKPOINTING = {"train.gradient_checkpointing": True}
# PyTorch on Windows has no NCCL: "auto" stays on one GPU there and several are not offered.
SHARES_GPUS = os.name != "nt"


@dataclass
class SharedEstimate(Estimate):
    """What ONE of `gpus` GPUs holds when they share a run `strategy`'s way; `change`: settings the studio turns
    on by itself to make it fit (gradient checkpointing), already part of `settings`."""
    gpus: int = 1
    strategy: str = "ddp"
    change: dict | None = None

    @property
    def reserved_bytes(self) -> int:
        """PyTorch's reserved memory: NCCL's buffers, like the CUDA context, live outside it."""
        return super().reserved_bytes - NCCL_BUFFERS

    def to_dict(self) -> dict:
        return {**super().to_dict(), "gpus": self.gpus, "strategy": self.strategy, "change": dict(self.change or {})}


def per_gpu_settings(settings: PlanSettings, gpus: int) -> PlanSettings:
    """One GPU's part of a step: its share of every packed row, rounded up to whole rows (an example is never
    split, so a share can reach a whole cutoff's worth of tokens)."""
    return settings.with_changes({"batch_size": -(-settings.batch_size // gpus)})


def per_gpu_estimate(config: dict | Shape, settings, gpus: int, strategy: str) -> SharedEstimate:
    """Peak memory of one GPU when `gpus` GPUs share the run by `strategy` ("ddp" or "fsdp")."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, not {strategy!r}")
    shape = config if isinstance(config, Shape) else shape_from_config(config)
    s = as_settings(settings)
    one = estimate(shape, per_gpu_settings(s, gpus))
    parts = dict(one.breakdown)
    full = s.method == "full"
    # one copy of every trainable value's gradient, in its own dtype: the weights themselves (full fine-
    # tuning) or the fp32 adapters
    gradient_bytes = parts["weights"] if full else parts["adapters"]
    notes = [f"Per GPU, with {gpus} GPUs training together, {WAYS[strategy]}."]
    if strategy == "ddp":
        extra = {"gathered": 0, "communication": gradient_bytes + NCCL_BUFFERS}
        notes.append("DDP keeps a copy of every gradient in its all-reduce buckets, and NCCL about "
                     f"{NCCL_BUFFERS / MiB:.0f} MiB of buffers.")
    else:
        c = 4 if s.precision == "fp32" else 2
        root = c * (shape.embed_params + shape.head_params + shape.hidden)  # embeddings, head, final norm
        stored = parts["weights"] + parts["weights_quantized"] + parts["adapters"]
        block = (stored - root) // shape.layers
        block_gradients = (gradient_bytes - (root if full else 0)) // shape.layers
        backward = one.peak_phase == "backward"
        if not backward and s.optimizer == "adamw_torch":
            # the step's temporary (one moment's size) is made per shard, like the moments themselves
            temporary = parts["optimizer"] // 2
            parts["workspace"] -= temporary - -(-temporary // gpus)
        for key in ("weights", "weights_quantized", "adapters", "optimizer"):
            parts[key] = -(-parts[key] // gpus)
        # At the backward peak without accumulation the only gradient alive is the head's, which stays whole
        # until the root unit reduce-scatters it at the very end.
        if not (backward and s.grad_accumulation == 1):
            parts["gradients"] = -(-parts["gradients"] // gpus)
        # nothing is gathered during the optimizer step: it works on each GPU's shards
        extra = {"gathered": root + 2 * block + block_gradients if backward else 0, "communication": NCCL_BUFFERS}
        notes.append(f"Weights, gradients and optimizer state are split {gpus} ways. While the model computes, "
                     "its embeddings and head and two blocks at a time are gathered whole, and a block's gradient "
                     "is whole until it is shared out. The peak is taken in the same phase as on one GPU.")
    breakdown, labels = {}, {}
    for key, value in parts.items():  # the new items go before the allocator's overhead
        if key == "allocator":
            breakdown.update(extra)
            labels.update(LABELS)
        breakdown[key] = value
        labels[key] = one.labels[key]
    return SharedEstimate(
        total_bytes=sum(breakdown.values()), breakdown=breakdown, labels=labels,
        assumptions=notes + one.assumptions, peak_phase=one.peak_phase, params_total=one.params_total,
        params_trainable=one.params_trainable, settings=s, shape=shape,
        paged_optimizer_bytes=one.paged_optimizer_bytes // (gpus if strategy == "fsdp" else 1),
        gpus=gpus, strategy=strategy, change={})


def share_plan(config: dict | Shape, settings, gpus: int, free_bytes: int | None = None,
               forced: str | None = None) -> SharedEstimate:
    """How the studio shares a run across `gpus` GPUs with `free_bytes` free on the fullest of them: the first
    of DDP, DDP with gradient checkpointing, FSDP, FSDP with checkpointing that fits (FSDP only when even
    checkpointing cannot fit the whole model on each GPU), else the smallest. Without GPU figures (the CPU),
    DDP. `forced` ("ddp" or "fsdp") keeps to one way."""
    from studio.plan.fit import FITS

    shape = config if isinstance(config, Shape) else shape_from_config(config)
    s = as_settings(settings)
    ways = [w for w in STRATEGIES if forced in (None, w)]
    tries = [(way, change) for way in ways for change in ({}, CHECKPOINTING)
             if not (change and s.gradient_checkpointing)]
    if free_bytes is None:
        tries = tries[:1]
    for way, change in tries:
        plan = per_gpu_estimate(shape, s.with_changes(change), gpus, way)
        plan.change = dict(change)
        if free_bytes is None or plan.total_bytes <= FITS * free_bytes:
            break
    if plan.change:
        plan.assumptions.insert(1, "The studio turns on gradient checkpointing to make this fit.")
    return plan


def same_kind(est: Estimate, settings: PlanSettings) -> Estimate:
    """`est` recomputed for other settings: per GPU in the same way when it is a multi-GPU estimate."""
    if isinstance(est, SharedEstimate) and est.gpus > 1:
        return per_gpu_estimate(est.shape, settings, est.gpus, est.strategy)
    return estimate(est.shape, settings)


def gpus_to_use(devices, available: int) -> int:
    """How many GPUs a run uses: train.devices ("auto", a number or a list) against the GPUs found."""
    if devices == "auto":
        return max(1, available) if SHARES_GPUS else 1
    return len(devices) if isinstance(devices, list) else int(devices)


def plan_on_gpus(config: dict | Shape, project, available: int, free_bytes: int | None) -> Estimate:
    """The estimate the app shows for a project: one GPU's plain estimate, or, when the project trains on
    several, what each of them holds the way the studio will share the run."""
    gpus = gpus_to_use(project.train.devices, available)
    if gpus == 1:
        return estimate(config, project)
    return share_plan(config, project, gpus, free_bytes)


@functools.lru_cache(maxsize=1)
def gpu_count() -> int:
    """CUDA GPUs on this computer, asked once (NVML, which creates no CUDA context; else torch)."""
    from studio.plan.gpu import detect_gpu

    count = 0
    while count < 64 and detect_gpu(count).available:
        count += 1
    return count


def more_gpus_fix(est: Estimate, free_bytes: int, gpus: int):
    """"Train on all N GPUs" as a fix, when the run does not fit one of them but fits each of N."""
    from studio.plan.fit import FITS, Fix

    if not SHARES_GPUS:
        return None
    plan = share_plan(est.shape, est.settings, gpus, free_bytes)
    if plan.total_bytes > FITS * free_bytes:
        return None
    how = "sharing the model across them (FSDP)" if plan.strategy == "fsdp" else "each on its share of every batch"
    extra = ", with gradient checkpointing" if plan.change else ""
    return Fix(f"Train on all {gpus} GPUs of this computer ({how}{extra}; faster, same result)",
               {"train.devices": gpus, **plan.change}, plan.total_bytes)


__all__ = ["GiB", "SharedEstimate", "gpu_count", "gpus_to_use", "more_gpus_fix", "per_gpu_estimate",
           "plan_on_gpus", "same_kind", "share_plan"]
