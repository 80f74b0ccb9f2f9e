"""Training without an NVIDIA GPU: judged by what will really happen on this computer, its RAM and its CPU.

The memory a run needs is the same estimate as for a GPU (less the CUDA context, plus the Python process
itself), held in RAM. The time a step takes is a rough guess: about 6 floating-point operations per parameter
per token for full fine-tuning (forward, and backward for activations and weights), about 4 with a frozen base
(no weight gradients), 2 more with gradient checkpointing, at a modest rate per CPU core. Good enough to tell
"minutes" from "days", which is what a user deciding on a model needs."""
from __future__ import annotations

import os
from dataclasses import dataclass

from studio import units
from studio.plan.gpu import NO_GPU, GpuInfo
from studio.vocabulary import METHODS

RAM_OVERHEAD = 1 * units.GiB  # Python, PyTorch and the tokenizer, besides the training's own memory
RAM_OVERHEAD_WORDS = "The program itself (Python, PyTorch)"
FLOPS_PER_CORE = 25e9  # what PyTorch reaches per core while training in fp32: a rough, typical figure
SENSIBLE_PARAMS = 600e6  # up to about 0.5B parameters a CPU trains in reasonable time; bigger takes days
QUANTIZED_SLOWDOWN = 4  # bitsandbytes' 4/8-bit layers on a CPU unpack the weights at every step
SENSIBLE_WORDS = ("On a CPU, small models (up to about 0.5B parameters, such as the embedded SmolLM2-135M) "
                  "are sensible; bigger ones need an NVIDIA GPU or a lot of patience.")


def ram_bytes() -> tuple[int, int]:
    """(total, available) RAM of this computer; available counts what the system can free (the page cache).
    (0, 0) where neither can be read: the verdict then speaks of the need alone."""
    try:  # Linux
        with open("/proc/meminfo", encoding="ascii") as info:
            fields = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in info if ":" in line}
        return fields.get("MemTotal", 0), fields.get("MemAvailable", fields.get("MemFree", 0))
    except (OSError, ValueError, IndexError):
        pass
    if os.name == "nt":
        return _windows_ram()
    total = available = 0
    try:  # macOS and other Unixes; the available pages are not known everywhere
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        pass
    return total, available or total


def _windows_ram() -> tuple[int, int]:
    import ctypes

    class MemoryStatus(ctypes.Structure):
        _fields_ = [("length", ctypes.c_ulong), ("load", ctypes.c_ulong), ("total", ctypes.c_ulonglong),
                    ("available", ctypes.c_ulonglong), ("page_total", ctypes.c_ulonglong),
                    ("page_available", ctypes.c_ulonglong), ("virtual_total", ctypes.c_ulonglong),
                    ("virtual_available", ctypes.c_ulonglong), ("extended", ctypes.c_ulonglong)]

    status = MemoryStatus(length=ctypes.sizeof(MemoryStatus))
    if not ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):
        return 0, 0
    return int(status.total), int(status.available)


def this_cpu(ram: tuple[int, int] | None = None) -> GpuInfo:
    """This computer judged as the device that trains: its RAM in place of a GPU's memory (available=False)."""
    total, available = ram or ram_bytes()
    return GpuInfo(False, "this computer's CPU", total, available, NO_GPU)


def ram_parts(est) -> list[tuple[str, str, int]]:
    """(key, label, bytes) of what a run on the CPU holds in RAM: the estimate's parts without the CUDA context
    (there is none), and the program itself. The memory panel and `ftstudio plan` list these; they add up to
    ram_needed."""
    parts = [(key, est.labels[key], int(n)) for key, n in est.breakdown.items() if n > 0 and key != "cuda_context"]
    return parts + [("program", RAM_OVERHEAD_WORDS, RAM_OVERHEAD)]


def memory_parts(est, on_cpu: bool) -> list[tuple[str, str, int]]:
    """(key, label, bytes) the memory panel and `ftstudio plan` list: on the CPU the RAM parts, on a GPU the
    estimate's own parts. Either way they add up to the total the verdict judges."""
    if on_cpu:
        return ram_parts(est)
    return [(key, est.labels[key], int(n)) for key, n in est.breakdown.items() if n > 0]


def ram_needed(est) -> int:
    """The RAM a run on the CPU needs: the estimate without the CUDA context, plus the process itself."""
    return sum(n for _, _, n in ram_parts(est))


def seconds_per_step(params_total: int, settings, cores: int | None = None) -> float:
    """A rough time for one optimizer step on this CPU, with every example as long as the cutoff."""
    method = METHODS[settings.method]
    per_token = (6 if method.trains_base else 4) + (2 if settings.gradient_checkpointing else 0)
    tokens = settings.batch_size * settings.grad_accumulation * settings.max_seq_len
    rate = FLOPS_PER_CORE * max(1, cores or os.cpu_count() or 1)
    slowdown = QUANTIZED_SLOWDOWN if method.quantized_base else 1
    return per_token * params_total * tokens * slowdown / rate


def duration_words(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


@dataclass(frozen=True)
class CpuJudgement:
    status: str  # "fits", "tight", "slow" or "does_not_fit" (RAM)
    need_bytes: int
    total_bytes: int
    available_bytes: int
    step_seconds: float
    sentence: str


def judge_on_cpu(est, ram: tuple[int, int] | None = None, cores: int | None = None) -> CpuJudgement:
    """Will this run work on this computer's CPU: RAM against what is available, and roughly how long a step
    takes. "slow" when the model is bigger than a CPU trains in reasonable time or its base is 4/8-bit."""
    from studio.plan.advice import cpu_notes
    from studio.plan.fit import status_of

    total, available = ram or ram_bytes()
    need = ram_needed(est)
    step = seconds_per_step(est.params_total, est.settings, cores)
    s = est.settings
    ram_status = status_of(need, available) if available else "fits"
    quantized = METHODS[s.method].quantized_base
    if ram_status == "does_not_fit":
        status = "does_not_fit"
    elif est.params_total > SENSIBLE_PARAMS or quantized:
        status = "slow"
    else:
        status = ram_status
    head = {"fits": "Fits this computer (no NVIDIA GPU, so it trains on the CPU)",
            "tight": "Tight on this computer's RAM (no NVIDIA GPU, so it trains on the CPU)",
            "slow": "Slow on this computer (no NVIDIA GPU, so it trains on the CPU)",
            "does_not_fit": "Does not fit this computer's RAM (no NVIDIA GPU, so it would train on the CPU)"}[status]
    ram_words = (f"about {units.memory(need)} of RAM needed, {units.memory(available)} available of "
                 f"{units.memory(total)}" if available else f"about {units.memory(need)} of RAM needed")
    cores_here = cores or os.cpu_count() or 1
    tokens = s.batch_size * s.grad_accumulation * s.max_seq_len
    time_words = (f"Roughly {duration_words(step * 1000 / tokens)} per 1,000 tokens trained (a rough guess from "
                  f"the model's size and {cores_here} CPU cores): up to {duration_words(step)} a step when its "
                  f"{s.batch_size * s.grad_accumulation} examples fill the {s.max_seq_len}-token cutoff; short "
                  "examples are much faster.")
    parts = [f"{head}: {ram_words}.", time_words]
    if est.params_total > SENSIBLE_PARAMS:
        parts.append(f"This model ({units.parameters(est.params_total)} parameters) is too big to train sensibly "
                     f"on a CPU. {SENSIBLE_WORDS}")
    parts += cpu_notes(s.method, s.precision)
    return CpuJudgement(status, need, total, available, step, " ".join(parts))
