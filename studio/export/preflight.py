"""Every check an export needs, made before a byte is written: a refusal names the problem and what to do.

Checks: the run has trained weights; the architecture is one the shipped converter handles; a tokenizer is
there and, for BPE, its pre-tokenizer is one llama.cpp recognises; a chat template is there (or which one the
Modelfile falls back to); every requested file fits on the disk; no file would be silently overwritten.
"""
from __future__ import annotations

import json
import os
import shutil
import struct
from dataclasses import dataclass, field
from pathlib import Path

from studio import units
from studio.errors import StudioError
from studio.export.modelfile import chat_format, modelfile_problem, read_chat_template
from studio.export.naming import export_folder, export_targets, sixteen_bit_source
from studio.merge import merge_is_current, merged_dir
from studio.train.runs import is_training, load_run_project, trained_weights_dir
from studio.vocabulary import QUANT_TYPES

DISK_MARGIN_BYTES = 64 * 1024**2  # metadata, the Modelfile, the report, and rounding in our estimates


class Problem(str):
    """A sentence for the user that also carries the code of the check that wrote it ("files_exist"), so the
    window can treat a known problem its own way without reading the words."""
    code = ""

    def __new__(cls, code: str, sentence: str) -> Problem:
        problem = super().__new__(cls, sentence)
        problem.code = code
        return problem


@dataclass
class Preflight:
    problems: list[str] = field(default_factory=list)  # any one of these blocks the export (Problem, by code)
    warnings: list[str] = field(default_factory=list)  # shown, but the export may go on
    sizes: dict[str, int] = field(default_factory=dict)  # quant -> estimated bytes of its GGUF
    free_bytes: int = 0
    needed_bytes: int = 0  # the requested files, the 16-bit intermediate and the merged model if not there yet
    architecture: str = ""
    tokenizer: str = ""  # e.g. "BPE (pre-tokenizer smollm)" or "SentencePiece (tokenizer.model)"
    targets: dict[str, Path] = field(default_factory=dict)  # quant -> final GGUF path
    existing: list[Path] = field(default_factory=list)  # files of an earlier export the export would replace
    parameters: int = 0  # of the model to export, for the size of every type (0: no trained weights yet)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, code: str) -> str | None:
        return next((p for p in self.problems if getattr(p, "code", "") == code), None)


def model_sources(run_dir: Path, merged_is_current: bool | None = None) -> tuple[Path, Path]:
    """(folder with the config and weights to export, folder whose tokenizer the export uses), as merge sees
    them: the merged model if it is the merge of the present weights, else the full fine-tune, else the base
    the adapter will be merged into."""
    from studio.models import resolve_model

    merged = merged_dir(run_dir)
    if merge_is_current(run_dir) if merged_is_current is None else merged_is_current:
        return merged, merged
    weights = trained_weights_dir(run_dir)
    if weights is None:
        raise StudioError(f"The run {Path(run_dir).name} has no trained weights yet. Train (or stop-and-save) "
                          "first, then export.")
    model = weights if weights.name == "model" else resolve_model(load_run_project(run_dir).model.name)
    has_tokenizer = any((weights / name).is_file() for name in ("tokenizer.json", "tokenizer.model"))
    return model, weights if has_tokenizer else model


def parameter_count(model_dir: Path) -> int:
    """Exact, from the safetensors headers (no tensor is read); a config.json estimate otherwise."""
    total = 0
    for path in model_dir.glob("*.safetensors"):
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length))
        for name, info in header.items():
            if name != "__metadata__":
                count = 1
                for dim in info["shape"]:
                    count *= dim
                total += count
    return total or config_parameter_count(json.loads((model_dir / "config.json").read_text(encoding="utf-8")))


def config_parameter_count(config: dict) -> int:
    config = config.get("text_config", config)
    hidden, layers = config["hidden_size"], config["num_hidden_layers"]
    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or hidden // heads
    kv = config.get("num_key_value_heads") or heads
    attention = hidden * head_dim * (2 * heads + 2 * kv)
    mlp = 3 * hidden * config.get("intermediate_size", 4 * hidden)
    embeddings = config["vocab_size"] * hidden * (1 if config.get("tie_word_embeddings") else 2)
    return embeddings + layers * (attention + mlp + 2 * hidden) + hidden


def estimated_size(parameters: int, quant: str) -> int:
    return int(parameters * QUANT_TYPES[quant].bits_per_weight / 8)


def existing_ancestor(folder: Path) -> Path:
    """The folder itself, or the nearest parent that exists (the output folder may not be made yet)."""
    existing = Path(folder).resolve()
    while not existing.exists():
        existing = existing.parent
    return existing


def free_space(folder: Path) -> int:
    return shutil.disk_usage(existing_ancestor(folder)).free


def check_architecture(model_dir: Path, report: Preflight) -> None:
    from studio.export.converter_facts import supported_architectures

    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    architectures = config.get("architectures") or config.get("text_config", {}).get("architectures") or []
    report.architecture = architectures[0] if architectures else config.get("model_type", "")
    if not architectures:
        report.problems.append(Problem("no_architecture", f"{model_dir / 'config.json'} names no architecture (no \"architectures\" "
                               "list), so the GGUF converter cannot tell what model this is. Add it, e.g. "
                               "[\"LlamaForCausalLM\"], or re-save the model with transformers."))
    elif architectures[0] not in supported_architectures():
        report.problems.append(Problem("unsupported_architecture",
                                       f"llama.cpp's converter does not support the {architectures[0]} architecture, so "
                               "this model cannot become a GGUF. Choose a supported base model (Llama, Mistral, "
                               "Qwen2/3, Gemma 2/3, Phi-3...) and train again."))


def check_tokenizer(tokenizer_dir: Path, report: Preflight) -> None:
    from studio.export.converter_facts import pre_tokenizer_name

    if (tokenizer_dir / "tokenizer.model").is_file():
        report.tokenizer = "SentencePiece (tokenizer.model)"
        return
    if not (tokenizer_dir / "tokenizer.json").is_file():
        report.problems.append(Problem("no_tokenizer",
                                       f"{tokenizer_dir} has no tokenizer (neither tokenizer.json nor tokenizer.model), "
                               "so the GGUF would have no vocabulary. Copy the tokenizer files from the base "
                               "model into that folder."))
        return
    from transformers import AutoTokenizer

    name = pre_tokenizer_name(AutoTokenizer.from_pretrained(str(tokenizer_dir), trust_remote_code=False))
    if name:
        report.tokenizer = f"BPE (pre-tokenizer {name})"
        return
    model = json.loads((tokenizer_dir / "tokenizer.json").read_text(encoding="utf-8")).get("model", {})
    if model.get("type") == "BPE" and model.get("byte_fallback"):  # read as a Llama SentencePiece-style vocab
        report.tokenizer = "BPE with byte fallback (SentencePiece style)"
        report.warnings.append("The tokenizer's pre-tokenizer is not in llama.cpp's table; it will be read as a "
                               "SentencePiece-style vocabulary. The parity check will confirm the tokens match.")
        return
    report.problems.append(Problem("unknown_pre_tokenizer",
                                   f"The tokenizer in {tokenizer_dir} splits text in a way llama.cpp does not recognise "
                           "(its BPE pre-tokenizer is not in llama.cpp's table), so the GGUF would tokenize "
                           "differently from the model you trained. Use a base model llama.cpp supports."))


def check_chat_template(tokenizer_dir: Path, report: Preflight) -> None:
    template = read_chat_template(tokenizer_dir)
    if not template:
        report.warnings.append("The model has no chat template, so it is exported as a plain text-completion "
                               "model: the Modelfile passes your prompt to it as it is.")
    elif chat_format(tokenizer_dir) is None:
        report.warnings.append("The model's chat template is not one we can write for Ollama (ChatML, Llama 3, "
                               "Gemma, Mistral, Phi-3); the GGUF keeps it for llama.cpp and LM Studio, but "
                               "the Modelfile uses a plain prompt: edit its TEMPLATE before `ollama create`.")


def check_k_quant_fallback(model_dir: Path, quants: list[str], report: Preflight) -> None:
    """K-quants pack rows in blocks of 256; llama.cpp stores rows of any other width in an older type."""
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    width = config.get("text_config", config).get("hidden_size", 0)
    k_quants = [q.upper() for q in quants if "_k" in q]
    if k_quants and width % 256:
        report.warnings.append(f"This model's layers have a size the {', '.join(k_quants)} format cannot pack, "
                               "so llama.cpp keeps most of them at a higher precision: the file comes out a "
                               "little bigger than estimated and answers a little closer to the full-quality "
                               f"file. Nothing to do; it works as usual. (Technical: the width, {width}, is not a multiple of 256.)")


def check_targets(targets: list[Path], overwrite: bool, report: Preflight) -> None:
    existing = [path for path in targets if path.exists()]
    report.existing = existing
    if existing and not overwrite:
        names = ", ".join(path.name for path in existing)
        report.problems.append(Problem("files_exist", f"{names} already exist{'s' if len(existing) == 1 else ''} in "
                                       f"{existing[0].parent}. Choose another output folder, or allow overwriting "
                                       "(--overwrite)."))


def preflight_export(run_dir: Path, quants: list[str], out_dir: Path | None = None, overwrite: bool = False,
                     free_bytes: int | None = None) -> Preflight:
    """`free_bytes` replaces the measured free space (for a test, or a disk we know will fill)."""
    run_dir = Path(run_dir).resolve()
    report = Preflight()
    project = load_run_project(run_dir)
    if is_training(run_dir):
        report.problems.append(Problem("still_training", f"The run {run_dir.name} is still training; export it "
                                       "once it has finished or been stopped (its weights are still changing)."))
        return report
    report.parameters = parameters_of(run_dir)  # every type's size is shown, even before one is chosen
    unknown = [q for q in quants if q not in QUANT_TYPES]
    if unknown:
        report.problems.append(Problem("unknown_type", f"{unknown[0]!r} is not a GGUF type we export; choose from "
                                       f"{', '.join(QUANT_TYPES)}."))
        return report
    if not quants:
        report.problems.append(Problem("no_type", "No GGUF type is chosen; pick at least one (e.g. q4_k_m)."))
        return report
    merged_is_current = merge_is_current(run_dir)
    try:
        model_dir, tokenizer_dir = model_sources(run_dir, merged_is_current)
    except StudioError as exc:
        report.problems.append(Problem("no_weights", str(exc)))
        return report
    check_architecture(model_dir, report)
    check_tokenizer(tokenizer_dir, report)
    check_chat_template(tokenizer_dir, report)
    if problem := modelfile_problem(project.data.system_prompt):
        report.problems.append(Problem("unsafe_system_prompt", problem))

    out_dir = export_folder(run_dir, project, out_dir)
    targets = export_targets(project, quants, out_dir)
    report.targets = targets["gguf"]
    check_targets([*targets["gguf"].values(), targets["modelfile"]], overwrite, report)

    check_k_quant_fallback(model_dir, quants, report)
    parameters = report.parameters
    report.sizes = {q: estimated_size(parameters, q) for q in quants}
    needed = sum(report.sizes.values())
    if sixteen_bit_source(quants) not in quants:  # the quantizer's input, deleted at the end
        needed += estimated_size(parameters, "f16")
    same_disk = os.stat(existing_ancestor(out_dir)).st_dev == os.stat(run_dir).st_dev
    if same_disk and not merged_is_current:
        needed += estimated_size(parameters, "bf16")  # the merged model folder, written first
    report.needed_bytes = needed + DISK_MARGIN_BYTES
    report.free_bytes = free_space(out_dir) if free_bytes is None else free_bytes
    if report.needed_bytes > report.free_bytes:
        report.problems.append(Problem("disk_full", f"Not enough free disk space in {out_dir}: the export needs about "
                               f"{units.file_size(report.needed_bytes)} and {units.file_size(report.free_bytes)} is free. "
                               "Free some space, choose fewer types, or choose another output folder."))
    return report


def parameters_of(run_dir: Path) -> int:
    """The exported model's parameter count (0 when the run has no trained weights yet)."""
    try:
        return parameter_count(model_sources(run_dir)[0])
    except StudioError:
        return 0
