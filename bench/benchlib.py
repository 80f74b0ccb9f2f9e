"""What the benchmark scripts share: which cases to run, the library versions a result was measured with, and a
random-init checkpoint of a published model shape (no download: only the shape matters for speed and memory)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable


def select_cases(spec: str | None, count: int) -> list[int]:
    """"0-7,12" -> [0, 1, ..., 7, 12] (indices past the end are dropped); no spec: all of them."""
    if not spec:
        return list(range(count))
    chosen = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        chosen.extend(range(int(lo), int(hi or lo) + 1))
    return [i for i in chosen if 0 <= i < count]


def versions(*packages: str) -> dict:
    import importlib.metadata as md
    out = {"python": sys.version.split()[0]}
    for pkg in packages:
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def random_checkpoint(config: dict, folder: Path, device: str, also_save: Callable[[Path], None] | None = None) -> Path:
    """A bf16 random-init model of this config.json, saved once into `folder` (written beside it, then renamed,
    so a run cut off never leaves a half-saved model); `also_save(folder)` adds files, such as a tokenizer."""
    if (folder / "config.json").is_file():
        return folder
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**config), dtype=torch.bfloat16)
    partial = folder.with_name(folder.name + ".partial")
    model.save_pretrained(partial)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    if also_save:
        also_save(partial)
    partial.rename(folder)
    return folder
