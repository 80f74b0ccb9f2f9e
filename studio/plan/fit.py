"""Fit verdict against the GPU's free memory, the cheapest changes that make a run fit, and auto-fit."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from studio import units
from studio.plan.estimator import Estimate, PlanSettings, as_settings, estimate
from studio.plan.gpu import GpuInfo
from studio.plan.multigpu import more_gpus_fix, same_kind
from studio.plan.shapes import Shape, shape_from_config
from studio.vocabulary import METHODS, OPTIMIZERS

FITS = 0.90  # at most 90 % of free memory: room for the desktop and allocator surprises
TIGHT = 1.00  # 90-100 %: may fit; another program opening a window can tip it over


@dataclass(frozen=True)
class Fix:
    label: str
    change: dict  # project settings to change, keyed like the project file: {"train.batch_size": 2}
    new_total_bytes: int
    plain: str = ""  # the Simple view's words for it ("" : the label is plain already)


@dataclass
class Verdict:
    status: str  # "fits", "tight", "does_not_fit"; on the CPU (no GPU) also "slow"
    sentence: str
    fixes: list[Fix] = field(default_factory=list)
    on_cpu: bool = False  # judged against this computer's RAM and CPU: there is no GPU to train on

    def to_dict(self) -> dict:
        return {"status": self.status, "sentence": self.sentence, "on_cpu": self.on_cpu,
                "fixes": [{"label": f.label, "change": f.change, "new_total_bytes": f.new_total_bytes}
                          for f in self.fixes]}


def status_of(total_bytes: int, free_bytes: int) -> str:
    if total_bytes <= FITS * free_bytes:
        return "fits"
    if total_bytes <= TIGHT * free_bytes:
        return "tight"
    return "does_not_fit"


def verdict(est: Estimate, gpu: GpuInfo, gpus: int = 1) -> Verdict:
    """Fits / tight / does not fit against free memory, with fixes when it is not comfortable.
    `gpus`: how many such GPUs the computer has; a run on fewer is offered all of them when that fits."""
    if not gpu.available:  # the run would train on the CPU: judge it by this computer's RAM and CPU
        return cpu_verdict(est, (gpu.total_bytes, gpu.free_bytes) if gpu.total_bytes else None)
    status = status_of(est.total_bytes, gpu.free_bytes)
    need, free = units.memory(est.total_bytes), units.memory(gpu.free_bytes)
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


def cpu_verdict(est: Estimate, ram: tuple[int, int] | None = None, cores: int | None = None) -> Verdict:
    """The verdict for training on this computer's CPU (studio.plan.cpu), with the changes that save RAM
    when it does not fit."""
    from studio.plan.cpu import judge_on_cpu, ram_needed

    judged = judge_on_cpu(est, ram, cores)
    fixes = []
    if judged.status == "does_not_fit":
        # suggest_fixes compares the GPU estimate with a budget: move the RAM's budget onto that scale
        free = int(judged.available_bytes - (ram_needed(est) - est.total_bytes) / FITS)
        fixes = suggest_fixes(est, max(free, 0), ram=True)
        return Verdict(judged.status, judged.sentence + (" These changes would make it fit:" if fixes else
                       " Even with every change the planner knows it would not fit: choose a smaller model."),
                       fixes, on_cpu=True)
    return Verdict(judged.status, judged.sentence, fixes, on_cpu=True)


def start_question(verdict_: Verdict | None) -> str:
    """The sentence Start asks before a run the planner says will not fit ("" when it may start unasked):
    what happens, and the first change that would make it fit."""
    if verdict_ is None or verdict_.status != "does_not_fit":
        return ""
    where = "this computer's RAM" if verdict_.on_cpu else "the GPU's memory"
    fix = (f" The first change that would make it fit: {verdict_.fixes[0].label} (the Method page applies it "
           "with one click).") if verdict_.fixes else " No change the planner knows makes it fit: choose a smaller model."
    return (f"The Method page says this run does not fit {where}: it will most likely stop with an "
            f"out-of-memory error.{fix} Start anyway?")


@dataclass(frozen=True)
class FixKind:
    """One kind of change that lowers the memory a run needs."""
    label: str  # the planner's words beside the memory bar
    how: str  # the words after an out-of-memory error, filled in with the values of the mildest step
    steps: Callable[[PlanSettings], list[dict]]  # from the mildest to the strongest; [] when it does not apply
    saves_ram: bool = True  # False: it helps GPU memory only (it moves memory into RAM, or needs a GPU format)
    plain: str = ""  # the Simple view's words, without the technical name


def _lean_loss(s: PlanSettings) -> list[dict]:
    return [] if s.lean_loss else [{"train.lean_loss": True}]


def _checkpointing(s: PlanSettings) -> list[dict]:
    return [] if s.gradient_checkpointing else [{"train.gradient_checkpointing": True}]


def _offload(s: PlanSettings) -> list[dict]:
    return [] if s.offload_checkpoints else [{"train.gradient_checkpointing": True, "train.offload_checkpoints": True}]


def _smaller_batch(s: PlanSettings) -> list[dict]:
    steps, batch = [], s.batch_size
    while batch > 1:
        batch = max(1, batch // 2)
        steps.append({"train.batch_size": batch,
                      "train.grad_accumulation": -(-s.batch_size * s.grad_accumulation // batch)})
    return steps


def _eight_bit_optimizer(s: PlanSettings) -> list[dict]:
    wanted = METHODS[s.method].trains_base and not OPTIMIZERS[s.optimizer].eight_bit
    return [{"train.optimizer": "adamw_8bit"}] if wanted else []


def _shorter_cutoff(s: PlanSettings) -> list[dict]:
    steps, seq = [], s.max_seq_len
    while seq > 256:
        seq = max(256, seq // 2)
        steps.append({"train.max_seq_len": seq})
    return steps


def _qlora(s: PlanSettings) -> list[dict]:
    if METHODS[s.method].base == "nf4":  # a 4-bit base already
        return []
    return [{"method.method": "qlora", **({"method.rank": 16} if METHODS[s.method].trains_base else {})}]


def _lower_rank(s: PlanSettings) -> list[dict]:
    steps, rank = [], s.rank
    while not METHODS[s.method].trains_base and rank > 4:
        rank //= 2
        steps.append({"method.rank": rank})
    return steps


# Every change the app offers to make a run fit, cheapest for the user first. The Method page lists those that
# make the estimate fit; an out-of-memory error or a worker the system killed offers the first that applies.
MEMORY_FIXES = (
    FixKind("Chunked loss (never holds the whole batch's logits; same result)",
            "turn on the chunked loss (the same result, without holding all the logits at once)", _lean_loss,
            plain="Work out the score in pieces (same result, less memory)"),
    FixKind("Turn on gradient checkpointing (about 30 % slower, same result)",
            "turn on gradient checkpointing (about 30% slower)", _checkpointing,
            plain="Recompute instead of remembering (about 30 % slower, same result)"),
    FixKind("Keep checkpointed activations in CPU memory (a little slower than checkpointing alone)",
            "keep the checkpointed activations in CPU memory (offload checkpoints; a little slower)", _offload,
            saves_ram=False, plain="Keep some of the work in the computer's memory instead (a little slower)"),
    FixKind("Smaller batch with more gradient accumulation (same effective batch, a little slower)",
            "lower the batch size to {batch_size} and raise gradient accumulation to {grad_accumulation} (same "
            "effective batch, less memory)", _smaller_batch,
            plain="Fewer examples at a time (same result, a little slower)"),
    FixKind("8-bit AdamW optimizer (quality about the same)",
            "use the 8-bit AdamW optimizer (quality about the same)", _eight_bit_optimizer, saves_ram=False,
            plain="Keep the training's running totals in less memory (quality about the same)"),
    FixKind("Shorter cutoff (longer examples are cut; check how many in the data statistics)",
            "shorten the sequence-length cutoff to {max_seq_len} tokens", _shorter_cutoff,
            plain="Cut examples shorter (longer examples lose their end)"),
    FixKind("QLoRA: 4-bit base model (30-50 % slower, slightly lower quality)",
            "switch to QLoRA, which stores the model in 4 bits", _qlora, saves_ram=False,
            plain="Smallest memory (QLoRA): the model squeezed to 4 bits (slower, slightly lower quality)"),
    FixKind("Lower LoRA rank (fewer trainable values; may learn less)",
            "lower the LoRA rank to {rank} (fewer trainable values; it may learn less)", _lower_rank,
            plain="A smaller add-on (it may learn less)"),
)


def suggest_fixes(est: Estimate, free_bytes: int, ram: bool = False) -> list[Fix]:
    """For each kind of change (MEMORY_FIXES, in order), the smallest step of it that fits.

    A kind that cannot fit alone is kept as a base for the next kinds, so later fixes can combine several;
    such a fix names the changes it builds on. `ram`: for the computer's own memory (a run on the CPU),
    only the changes that save RAM.
    """
    budget = FITS * free_bytes
    base: dict = {}
    base_names: list[str] = []
    base_plain: list[str] = []
    fixes: list[Fix] = []
    for kind in MEMORY_FIXES:
        if ram and not kind.saves_ram:
            continue
        steps = kind.steps(est.settings.with_changes(base))
        for step in steps:
            change = {**base, **step}
            total = same_kind(est, est.settings.with_changes(change)).total_bytes  # per GPU for a run on several
            if total <= budget:
                fixes.append(Fix(_label(kind.label, base_names), change, total,
                                 _label(kind.plain, base_plain) if kind.plain else ""))
                break
        else:
            if steps:
                base.update(steps[-1])  # even the strongest step is not enough: build on it
                base_names.append(_short(kind.label))
                base_plain.append(_short(kind.plain or kind.label))
    return fixes


def first_fix(settings: PlanSettings, gpu_memory: bool = True) -> tuple[str, dict]:
    """The first change of MEMORY_FIXES that applies, at its mildest: in words ("turn on gradient
    checkpointing ...") and as settings. For the computer's own memory (gpu_memory=False) a change that moves
    memory into RAM or needs a GPU format would not help. ("", {}) when every change is made already."""
    for kind in MEMORY_FIXES:
        steps = kind.steps(settings) if gpu_memory or kind.saves_ram else []
        if steps:
            return kind.how.format(**{key.split(".")[-1]: value for key, value in steps[0].items()}), steps[0]
    return "", {}


def _short(label: str) -> str:
    """A kind's label without its explanation: "Turn on gradient checkpointing"."""
    return label.split(" (")[0].split(":")[0]


def _label(label: str, base_names: list[str]) -> str:
    """A fix's words; one built on changes that do not fit alone names them (they are not listed above it)."""
    return label + (f", together with: {', '.join(name.lower() for name in base_names)}" if base_names else "")


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
