"""Which GPU this computer has and how much of its memory is free; the measured peak after training steps.

NVML (nvidia-ml-py) answers without creating a CUDA context, so asking costs nothing and the numbers include
memory other programs (the desktop, a browser) hold. torch.cuda is the fallback.
"""
from __future__ import annotations

from dataclasses import dataclass

from studio import units

NO_GPU = ("No CUDA GPU was found, so training would run on the CPU: it works for the small embedded model "
          "(slowly), but a real model needs an NVIDIA GPU with a recent driver.")


@dataclass(frozen=True)
class GpuInfo:
    available: bool
    name: str = ""
    total_bytes: int = 0
    free_bytes: int = 0
    sentence: str = ""

    def to_dict(self) -> dict:
        return {"available": self.available, "name": self.name, "total_bytes": self.total_bytes,
                "free_bytes": self.free_bytes, "sentence": self.sentence}


def gpu_from_numbers(name: str, total_bytes: int, free_bytes: int | None = None) -> GpuInfo:
    """A GPU described by hand (for planning a purchase, or for tests)."""
    free = total_bytes if free_bytes is None else free_bytes
    return GpuInfo(True, name, int(total_bytes), int(free),
                   f"{name}: {units.memory(free)} free of {units.memory(total_bytes)}.")


def planned_gpu(size_gb: float) -> GpuInfo:
    """A GPU of a size the user plans for ("will this fit on a 12 GB card?"), all of it free."""
    return gpu_from_numbers(f"a {size_gb:g} GB GPU", int(size_gb * units.GiB))


def detect_gpu(index: int = 0) -> GpuInfo:
    """The first CUDA GPU (or `index`), by NVML, else by torch; available=False with a sentence if none."""
    info = _from_nvml(index)
    if info is None:
        info = _from_torch(index)
    return info or GpuInfo(False, sentence=NO_GPU)


def _from_nvml(index: int) -> GpuInfo | None:
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # no driver: the library loads but NVML does not
        return None
    try:
        if index >= pynvml.nvmlDeviceGetCount():
            return None
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        name = pynvml.nvmlDeviceGetName(handle)
        name = name.decode() if isinstance(name, bytes) else name
        mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
        return gpu_from_numbers(name, mem.total, mem.free)
    except Exception:
        return None
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def _from_torch(index: int) -> GpuInfo | None:
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available() or index >= torch.cuda.device_count():
        return None
    free, total = torch.cuda.mem_get_info(index)
    return gpu_from_numbers(torch.cuda.get_device_name(index), total, free)


def measured_peak(device: int | None = None) -> dict | None:
    """The peak memory PyTorch has held on the GPU so far in this process, or None without CUDA.

    The trainer calls this after its first steps and emits it as a `memory` event, so the app can put the
    estimate's reserved_bytes beside the real reserved peak.
    """
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    dev = torch.cuda.current_device() if device is None else device
    return {"reserved_bytes": int(torch.cuda.max_memory_reserved(dev)),
            "allocated_bytes": int(torch.cuda.max_memory_allocated(dev)),
            "device": torch.cuda.get_device_name(dev)}
