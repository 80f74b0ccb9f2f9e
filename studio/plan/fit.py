"""Fit verdict against the GPU's free memory, the cheapest changes that make a run fit, and auto-fit."""
from __future__ import annotations

from dataclasses import dataclass, field

from studio.plan.advice import cpu_notes
from studio.plan.estimator import GiB, Estimate, PlanSettings, as_settings, estimate
from studio.plan.gpu import GpuInfo
from studio.plan.multigpu import more_gpus_fix, same_kind
from studio.plan.shapes import Shape, shape_from_config

FITS = 0.90  # at most 90 % of free memory: room for the desktop and allocator surprises
TIGHT = 1.00  # 90-100 %: may fit; another program opening a window can tip it over


@dataclass(frozen=True)
class Fix:
    label: str
    change: dict  # project settings to change, keyed like the project file: {"train.batch_size": 2}
    new_total_bytes: int


@dataclass
class Verdict:
    status: str  # "fits", "tight", "does_not_fit", "no_gpu"
    sentence: str
    fixes: list[Fix] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"status": self.status, "sentence": self.sentence,
                "fixes": [{"label": f.label, "change": f.change, "new_total_bytes": f.new_total_bytes}
                          for f in self.fixes]}


def _gb(n: int) -> str:
    return f"{n / GiB:.1f} GB"


def status_of(total_bytes: int, free_bytes: int) -> str:
    if total_bytes <= FITS * free_bytes:
        return "fits"
    if total_bytes <= TIGHT * free_bytes:
        return "tight"
    return "does_not_fit"


def verdict(est: Estimate, gpu: GpuInfo, gpus: int = 1) -> Verdict:
    """Fits / tight / does not fit against free memory, with fixes when it is not comfortable.
    `gpus`: how many such GPUs the computer has; a run on fewer is offered all of them when that fits."""
    if not gpu.available:  # the run would train on the CPU: say what that means for this method
        on_cpu = "".join(" " + note for note in cpu_notes(est.settings.method, est.settings.precision))
        return Verdict("no_gpu", f"This run needs about {_gb(est.total_bytes)} of GPU memory. {gpu.sentence}{on_cpu}")
    status = status_of(est.total_bytes, gpu.free_bytes)
    need, free = _gb(est.total_bytes), _gb(gpu.free_bytes)
    if status == "fits":
        return Verdict(status, f"Fits: about {need} of the {free} free on {gpu.name}.")
    fixes = suggest_fixes(est, gpu.free_bytes)
    if gpus > getattr(est, "gpus", 1):
        fixes[:0] = [fix for fix in [more_gpus_fix(est, gpu.free_bytes, gpus)] if fix]
    if status == "tight":
        sentence = (f"Tight: about {need} of the {free} free on {gpu.name}. It may fit; close other programs "
                    "that use the GPU, or make one of the changes below.")
    else:
        sentence = f"Does not fit: about {need} needed, {free} free on {gpu.name}."
        sentence += " These changes would make it fit:" if fixes else (
            " Even with every change the planner knows it would not fit: choose a smaller model.")
    return Verdict(status, sentence, fixes)


def suggest_fixes(est: Estimate, free_bytes: int) -> list[Fix]:
    """For each kind of change, cheapest for the user first, the smallest step of it that fits.

    A kind that cannot fit alone is kept as a base for the next kinds, so later fixes can combine several.
    """
    s0 = est.settings
    budget = FITS * free_bytes
    base: dict = {}
    fixes: list[Fix] = []

    def total(change: dict) -> int:
        return same_kind(est, s0.with_changes(change)).total_bytes  # per GPU for a run on several

    def consider(label: str, steps: list[dict]) -> None:
        """steps: from the mildest to the strongest version of one kind of change."""
        if not steps:
            return
        for step in steps:
            change = {**base, **step}
            t = total(change)
            if t <= budget:
                fixes.append(Fix(_label(label, base), change, t))
                return
        base.update(steps[-1])  # even the strongest step is not enough: build on it

    if not s0.lean_loss:
        consider("Chunked loss (never holds the whole batch's logits; same result)", [{"train.lean_loss": True}])
    if not s0.gradient_checkpointing:
        consider("Turn on gradient checkpointing (about 30 % slower, same result)",
                 [{"train.gradient_checkpointing": True}])
    if not s0.offload_checkpoints:
        consider("Keep checkpointed activations in CPU memory (a little slower than checkpointing alone)",
                 [{"train.gradient_checkpointing": True, "train.offload_checkpoints": True}])
    b, ga = s0.batch_size, s0.grad_accumulation
    smaller = []
    nb = b
    while nb > 1:
        nb = max(1, nb // 2)
        smaller.append({"train.batch_size": nb, "train.grad_accumulation": -(-b * ga // nb)})
    consider("Smaller batch with more gradient accumulation (same effective batch, a little slower)", smaller)
    if s0.method == "full" and s0.optimizer in ("adamw_torch", "paged_adamw_32bit", "adafactor"):
        consider("8-bit AdamW optimizer (quality about the same)", [{"train.optimizer": "adamw_8bit"}])
    shorter = []
    seq = s0.max_seq_len
    while seq > 256:
        seq = max(256, seq // 2)
        shorter.append({"train.max_seq_len": seq})
    consider("Shorter cutoff (longer examples are cut; check how many in the data statistics)", shorter)
    if s0.method != "qlora":
        consider("QLoRA: 4-bit base model (30-50 % slower, slightly lower quality)",
                 [{"method.method": "qlora", **({"method.rank": 16} if s0.method == "full" else {})}])
    if base.get("method.method", s0.method) != "full":
        lower = []
        r = base.get("method.rank", s0.rank)
        while r > 4:
            r //= 2
            lower.append({"method.rank": r})
        consider("Lower LoRA rank (fewer trainable values; may learn less)", lower)
    return fixes


def _label(label: str, base: dict) -> str:
    return label + (" (together with the changes above)" if base else "")


def auto_fit(config: dict | Shape, project, gpu: GpuInfo, max_batch: int = 64) -> dict:
    """The largest batch that fits, keeping the effective batch (batch x accumulation) where it was.

    Turns on gradient checkpointing when even batch 1 does not fit without it. Returns the changes to
    make ({} when there is no GPU or nothing fits: then verdict() lists the bigger changes).
    """
    if not gpu.available:
        return {}
    shape = config if isinstance(config, Shape) else shape_from_config(config)
    s = as_settings(project)
    budget = FITS * gpu.free_bytes
    effective = s.batch_size * s.grad_accumulation
    for checkpointing in ([False, True] if not s.gradient_checkpointing else [True]):
        def fits(b: int) -> bool:
            return estimate(shape, _batch(s, b, effective, checkpointing)).total_bytes <= budget
        if not fits(1):
            continue
        lo, hi = 1, max_batch  # memory grows with the batch: binary search the largest that fits
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
        change = {"train.batch_size": lo, "train.grad_accumulation": max(1, -(-effective // lo))}
        if checkpointing != s.gradient_checkpointing:
            change["train.gradient_checkpointing"] = checkpointing
        return change
    return {}


def _batch(s: PlanSettings, b: int, effective: int, checkpointing: bool) -> PlanSettings:
    return s.with_changes({"batch_size": b, "grad_accumulation": max(1, -(-effective // b)),
                           "gradient_checkpointing": checkpointing})
