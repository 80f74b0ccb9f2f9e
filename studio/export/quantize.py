"""Quantizing a 16-bit GGUF with llama.cpp's own quantizer (through llama-cpp-python: no compiler, no
llama.cpp checkout, no network). Run as a subprocess (`python -m studio.export.quantize IN OUT TYPE`) so a
cancel can stop it at once and a crash in native code cannot take the app down."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

from studio.errors import Cancelled, ExportError
from studio.tether import tethered_popen

# Bits per weight of each type, from llama.cpp's block layouts, for file size estimates before export.
BITS_PER_WEIGHT = {"f16": 16.0, "bf16": 16.0, "q8_0": 8.5, "q6_k": 6.56, "q5_k_m": 5.69, "q5_0": 5.5,
                   "q4_k_m": 4.85, "q4_k_s": 4.58, "q4_0": 4.5, "q3_k_m": 3.91, "q2_k": 3.35}


def ftype_constant(quant: str) -> int:
    import llama_cpp

    name = f"LLAMA_FTYPE_MOSTLY_{quant.upper()}"
    if not hasattr(llama_cpp, name):
        raise ExportError(f"llama.cpp has no quantization type {quant!r}.")
    return getattr(llama_cpp, name)


def quantize_file(source: Path, target: Path, quant: str) -> None:
    """In this process: the blocking native call."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype_constant(quant)
    params.nthread = os.cpu_count() or 1
    status = llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), params)
    if status != 0:
        raise ExportError(f"llama.cpp could not quantize {source.name} to {quant.upper()} (status {status}).")


def quantize(source: Path, target: Path, quant: str, cancelled: Callable[[], bool] | None = None) -> None:
    """In a child process, so it can be cancelled; it ends with this process (studio.tether)."""
    proc = tethered_popen([sys.executable, "-m", "studio.export.quantize", str(Path(source).resolve()),
                           str(Path(target).resolve()), quant], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    while True:
        try:
            output, _ = proc.communicate(timeout=0.2)
            break
        except subprocess.TimeoutExpired:
            if cancelled and cancelled():
                proc.kill()
                proc.wait()
                raise Cancelled("Export cancelled.") from None
    if proc.returncode != 0 or not target.is_file():
        tail = " | ".join(line for line in (output or "").strip().splitlines()[-3:])
        raise ExportError(f"Quantizing to {quant.upper()} failed: {tail}")


if __name__ == "__main__":
    try:
        quantize_file(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])
    except ExportError as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)
