"""What the shipped llama.cpp converter supports, read from its source text rather than by importing it.

Importing the converter pulls in torch and a hundred model modules, and its own gguf-py would shadow ours; so
the preflight reads the two facts it needs straight from the files: the table of architectures the converter
dispatches on, and the table of BPE pre-tokenizers it recognises (by hashing the tokens of a fixed test text).
"""
from __future__ import annotations

import ast
import re
from functools import lru_cache
from hashlib import sha256
from pathlib import Path

from studio.export.converter import converter_dir


def _python_files(folder: Path) -> list[Path]:
    return [folder / "convert_hf_to_gguf.py", *sorted((folder / "conversion").glob("*.py"))]


@lru_cache(maxsize=4)
def supported_architectures(folder: Path | None = None) -> frozenset[str]:
    """The Hugging Face `architectures` names the converter can convert."""
    folder = folder or converter_dir()
    init = folder / "conversion" / "__init__.py"
    if init.is_file():  # this release dispatches through one table in conversion/__init__.py
        for node in ast.walk(ast.parse(init.read_text(encoding="utf-8"))):
            target = getattr(node, "target", None) or (getattr(node, "targets", None) or [None])[0]
            if isinstance(target, ast.Name) and target.id == "TEXT_MODEL_MAP" and node.value is not None:
                return frozenset(ast.literal_eval(node.value))
    names: set[str] = set()  # older releases: only the @ModelBase.register("...") decorators
    for path in _python_files(folder):
        if path.is_file():
            for call in re.findall(r"@ModelBase\.register\(([^)]*)\)", path.read_text(encoding="utf-8")):
                names.update(re.findall(r'"([A-Za-z0-9_]+)"', call))
    return frozenset(names)


@lru_cache(maxsize=4)
def pre_tokenizer_table(folder: Path | None = None) -> tuple[str, dict[str, str]]:
    """(the test text, {hash of its tokens: pre-tokenizer name}) from the converter's get_vocab_base_pre."""
    folder = folder or converter_dir()
    for path in _python_files(folder):
        source = path.read_text(encoding="utf-8") if path.is_file() else ""
        text = re.search(r"^\s*chktxt = (.+)$", source, re.MULTILINE)
        if text:
            table = dict(re.findall(r'if chkhsh == "([0-9a-f]{64})":\s*\n(?:\s*#[^\n]*\n)*\s*res = "([^"]+)"',
                                    source))
            return ast.literal_eval(text.group(1)), table
    raise FileNotFoundError(f"No pre-tokenizer table in the converter at {folder}.")


def pre_tokenizer_name(tokenizer, folder: Path | None = None) -> str | None:
    """The llama.cpp pre-tokenizer the converter would pick for a (transformers) tokenizer, or None."""
    text, table = pre_tokenizer_table(folder)
    # The converter hashes str() of the token id list of tokenizer.encode(text), special tokens included.
    return table.get(sha256(str(tokenizer.encode(text)).encode()).hexdigest())
