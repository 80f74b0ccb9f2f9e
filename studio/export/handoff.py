"""Handing the exported GGUF to the apps people run it in: `ollama create` with our Modelfile, and LM Studio's
models folder layout (<models>/<publisher>/<model>/<file>.gguf). A hand-off that cannot be done is reported
in a sentence; it never fails the export, whose files are already complete."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from studio.fileio import staged_file

LMSTUDIO_PUBLISHER = "fine-tune-studio"


def ollama_name(project) -> str:
    """Ollama model names are lower case letters, digits and - _ . only."""
    from studio.export.naming import gguf_basename

    return re.sub(r"[^a-z0-9._-]+", "-", gguf_basename(project).lower()).strip("-._") or "model"


OLLAMA_MISSING = "Ollama is not installed on this computer, so your model was not added to it."


def ollama_installed() -> bool:
    return shutil.which("ollama") is not None


def ollama_missing_advice() -> str:
    """What to do when Ollama is not there, in plain words (shown in a warning box on the Export page)."""
    return (f"{OLLAMA_MISSING} Your GGUF file is ready all the same. To chat with it: install Ollama from "
            "ollama.com and export again, or open the GGUF file in LM Studio or llama.cpp (Open folder shows it).")


def ollama_missing_before_export() -> str:
    """Said before an export that asks for Ollama on a computer without it."""
    return ("Ollama is not installed on this computer: the GGUF files will be made, but not added to Ollama. "
            "Install Ollama from ollama.com first, or use the files in LM Studio or llama.cpp.")


def register_with_ollama(modelfile: Path, name: str) -> str:
    ollama = shutil.which("ollama")
    if ollama is None:
        return (f"{OLLAMA_MISSING} Install it from ollama.com, then run: ollama create {name} -f "
                f"\"{modelfile}\"")
    try:  # the Modelfile names its GGUF relative to its own folder
        done = subprocess.run([ollama, "create", name, "-f", str(modelfile)], cwd=str(modelfile.parent),
                              capture_output=True, text=True, timeout=3600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`ollama create {name}` could not run ({exc}); the Modelfile is ready at {modelfile}."
    if done.returncode != 0:
        why = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no message"]
        return (f"`ollama create {name}` failed ({why[0]}). Is the Ollama app running? The Modelfile is "
                f"ready at {modelfile}.")
    return f"Registered with Ollama as {name}: try `ollama run {name}`."


def lmstudio_models_dir() -> Path:
    """LMSTUDIO_MODELS when set; else LM Studio's models folder (~/.lmstudio/models, or the older
    ~/.cache/lm-studio/models where only that one exists)."""
    if os.environ.get("LMSTUDIO_MODELS"):
        return Path(os.environ["LMSTUDIO_MODELS"]).expanduser()
    current, older = Path.home() / ".lmstudio" / "models", Path.home() / ".cache" / "lm-studio" / "models"
    return older if older.is_dir() and not current.is_dir() else current


def place_in_lmstudio(files: dict[str, Path], model: str) -> str:
    """Hard-link (same disk, no extra space) or copy each GGUF into <models>/<publisher>/<model>/."""
    folder = lmstudio_models_dir() / LMSTUDIO_PUBLISHER / model
    try:
        for path in files.values():
            target = folder / path.name
            if target.exists() and os.path.samefile(target, path):
                continue
            with staged_file(target) as tmp:
                try:
                    os.link(path, tmp)
                except OSError:  # another disk, or a file system without hard links
                    shutil.copyfile(path, tmp)
    except Exception as exc:  # the export itself is done: say what went wrong, do not fail it
        return f"Could not place the files in LM Studio's models folder {folder}: {exc}"
    return f"Placed {len(files)} file(s) in LM Studio's models folder: {folder}"


def hand_off(result, project, ollama: bool = False, lmstudio: bool = False) -> list[str]:
    from studio.export.naming import gguf_basename

    messages = []
    if ollama:
        messages.append(register_with_ollama(result.modelfile, ollama_name(project)) if result.modelfile else
                        "No file passed its check, so nothing was registered with Ollama.")
    if lmstudio:
        passed = {q: p for q, p in result.files.items() if q not in result.failed}
        if passed:
            messages.append(place_in_lmstudio(passed, gguf_basename(project)))
        else:
            messages.append("No file passed its check, so nothing was placed in LM Studio's models folder.")
    return messages
