"""The base model's answers, kept: the base is the same for every run of a project (and its general answers
for every project on the same base), so it is measured once and read back after that.

Two entries per base, each a JSON file in the cache folder (`<cache>/eval-base/`, written atomically):
- "general": its answers to the check's questions and its prose perplexity; the key holds the check's question
  prompts (so the system prompt), the prose windows, the answer limit and the check's fingerprint;
- "task": its answers to a project's held-out prompts and the loss of your answers; the key holds those token
  ids, so another split, eval file, sequence length or answer limit is measured anew.
Both keys also hold what makes the numbers: the base model's files (name, size and date of each), the device,
the dtype and 4-bit/8-bit loading, the torch and transformers releases, and FORMAT (raise it when what is
measured changes). Anything different is a new key, so a stale entry is never read; a missing or unreadable
entry is measured again.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from studio.errors import StudioError
from studio.evaluate.engine import Reply
from studio.fileio import atomic_write_text

FORMAT = 1
FOLDER = "eval-base"
WEIGHT_SUFFIXES = {".json", ".safetensors", ".bin", ".model", ".txt", ".gguf"}


def identity(base_dir: Path, device: str, dtype, quantized: str = "") -> dict:
    """What the base model's numbers depend on besides the inputs."""
    import torch
    import transformers

    base_dir = Path(base_dir)
    files = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in base_dir.iterdir()
                   if p.is_file() and p.suffix in WEIGHT_SUFFIXES) if base_dir.is_dir() else []
    return {"format": FORMAT, "model": str(base_dir), "files": files, "device": device, "dtype": str(dtype),
            "quantized": quantized, "torch": torch.__version__, "transformers": transformers.__version__}


def key(base: dict, part: str, inputs: dict) -> str:
    text = json.dumps({"base": base, "part": part, "inputs": inputs}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _path(part: str, digest: str) -> Path:
    from studio.paths import home

    return home() / FOLDER / f"{part}-{digest}.json"


def load(part: str, digest: str) -> dict | None:
    """The kept side, with replies as Reply again; None when there is none (or it cannot be read)."""
    try:
        entry = json.loads(_path(part, digest).read_text(encoding="utf-8"))
        side = entry["side"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if part == "task":
        side["replies"] = [Reply(text, stopped) for text, stopped in side["replies"]]
    side["measured"] = entry.get("written", "")
    return side


def store(part: str, digest: str, side: dict, run_dir: Path) -> None:
    """Keep a side measured now; a cache that cannot be written only costs the next check its time."""
    plain = dict(side)
    if part == "task":  # the general side keeps its replies as text already (general.summarize)
        plain["replies"] = [[r.text, r.stopped] for r in side["replies"]]
    entry = {"written": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "run": str(run_dir), "side": plain}
    try:
        atomic_write_text(_path(part, digest), json.dumps(entry, ensure_ascii=False) + "\n")
    except (OSError, StudioError):
        pass
