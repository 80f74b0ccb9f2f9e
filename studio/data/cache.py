"""Tokenized datasets cached on disk, so re-opening a project skips the tokenizing.

The key covers everything that changes the tokens: the data files' content, the tokenizer's vocabulary
and chat template, the format and column mapping, the cutoff and every data setting. Entries are .npz files
(flat token arrays), written under a temporary name and renamed into place.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from studio import paths
from studio.data.tokenize import Example
from studio.fileio import staged_file

VERSION = 3  # bump when the reading or tokenizing rules change, so old entries are not reused (2: documents,
# 3: message content is plain text, never chat-control tokens)


def content_hash(location: str | Path) -> str:
    """SHA-256 of a file, of every file in a folder, or (for a Hub dataset id) of the id itself. A folder of
    documents counts the documents only, by name and content, so a lock file that Word leaves beside an open
    document or a picture in the folder does not make the data look new."""
    from studio.data.documents import document_files, is_document_folder

    path = Path(location).expanduser()
    digest = hashlib.sha256()
    if path.is_dir():
        files = document_files(path)[0] if is_document_folder(path) else sorted(p for p in path.rglob("*") if p.is_file())
    else:
        files = [path] if path.exists() else []
    if not files:
        digest.update(str(location).encode())
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else "").encode())
        with file.open("rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()


def tokenizer_hash(tokenizer, chat_template: str | None = None) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    vocab = backend.to_str() if backend is not None else json.dumps(tokenizer.get_vocab(), sort_keys=True)
    parts = [vocab, str(tokenizer.chat_template), str(chat_template), str(tokenizer.eos_token)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def cache_key(**parts) -> str:
    return hashlib.sha256(json.dumps({"v": VERSION, **parts}, sort_keys=True, default=str).encode()).hexdigest()


def entry(key: str) -> Path:
    return paths.data_cache_dir() / f"{key[:32]}.npz"


def save(key: str, train: list[Example], evals: list[Example], skipped: list[tuple[int, str]]) -> None:
    arrays = {"skipped": np.array(json.dumps(skipped))}
    for name, examples in (("train", train), ("eval", evals)):
        arrays[f"{name}_len"] = np.array([len(e.input_ids) for e in examples], dtype=np.int64)
        arrays[f"{name}_cut"] = np.array([e.truncated_tokens for e in examples], dtype=np.int64)
        arrays[f"{name}_ids"] = np.array([t for e in examples for t in e.input_ids], dtype=np.int32)
        arrays[f"{name}_labels"] = np.array([t for e in examples for t in e.labels], dtype=np.int32)
    with staged_file(entry(key)) as tmp, tmp.open("wb") as handle:
        np.savez(handle, **arrays)


def load(key: str):
    """(train, eval, skipped) from the cache, or None when there is no (readable) entry."""
    path = entry(key)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            out = [_examples(data, "train"), _examples(data, "eval")]
            skipped = [tuple(s) for s in json.loads(str(data["skipped"]))]
    except Exception:  # a damaged entry is rebuilt, never trusted
        return None
    return out[0], out[1], skipped


def _examples(data, name: str) -> list[Example]:
    lengths, cuts = data[f"{name}_len"], data[f"{name}_cut"]
    ids, labels = data[f"{name}_ids"].tolist(), data[f"{name}_labels"].tolist()
    out, start = [], 0
    for length, cut in zip(lengths.tolist(), cuts.tolist()):
        out.append(Example(ids[start:start + length], labels[start:start + length], cut))
        start += length
    return out
