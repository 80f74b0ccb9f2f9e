"""The GPU memory the training process really took, for the estimate-vs-actual view."""
from __future__ import annotations


def measured_peak() -> dict | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return {"reserved_bytes": torch.cuda.max_memory_reserved(), "allocated_bytes": torch.cuda.max_memory_allocated(),
            "device": torch.cuda.get_device_name()}
