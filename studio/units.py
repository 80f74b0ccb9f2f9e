"""How the studio writes sizes, so a number means the same on every page and in every command.

Memory (GPU and RAM) is counted in binary units, 1 GB = 1024**3 bytes, as GPU makers and operating systems
size memory; files on disk in decimal units, 1 GB = 10**9 bytes, as file managers and download pages show
them. Parameter counts are decimal millions and billions.
"""
from __future__ import annotations

GiB = 1024 ** 3
MiB = 1024 ** 2


def memory(count: float, digits: int = 1) -> str:
    """GPU or RAM memory: 25769803776 -> "24.0 GB"."""
    return f"{count / GiB:.{digits}f} GB"


def file_size(count: float) -> str:
    """A file on disk: 1_543_000_000 -> "1.54 GB", 144_800_000 -> "145 MB"."""
    return f"{count / 1e9:.2f} GB" if count >= 1e9 else f"{count / 1e6:.0f} MB"


def parameters(count: int) -> str:
    """A count of model values: 9_175_040 -> "9.2M", 134_515_008 -> "135M", 1_711_376_384 -> "1.7B"."""
    if count >= 0.95 * 10 ** 9:
        return f"{count / 10 ** 9:.1f}B"
    return f"{count / 10 ** 6:.0f}M" if count >= 10 ** 8 else f"{count / 10 ** 6:.1f}M"
