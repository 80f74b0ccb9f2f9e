"""Greedy answers and answer-token losses of one model, fast enough to check a run in under a minute on a CPU.

Two engines with the same two methods: `HfEngine` (a transformers model, with or without a PEFT adapter) and
`GgufEngine` (an exported file in llama.cpp). Both take token ids made by the run's own tokenizer, so a
question is the same sequence of tokens for the base model, the adapter and the GGUF.

Speed on a CPU comes from batching, not from shortcuts: prompts are sorted by length and answered in
batches with left padding and a KV cache; the part every prompt shares (the chat template's system turn) is
run once per batch and its cache copied to every row; losses are one padded forward per batch, and only the
labelled positions ever reach the output layer (studio.train.loss).
"""
from __future__ import annotations

import inspect
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from studio.data.tokenize import IGNORE
from studio.errors import Cancelled, ModelError

Cancel = Callable[[], bool]
Progress = Callable[[float], None]  # fraction of this call done
GENERATE_BATCH = 64    # prompts per generate call: big enough that each step is a matrix product, not a vector
LOSS_BATCH_TOKENS = 4096  # padded tokens per loss forward
MIN_SHARED_PREFIX = 4  # below this, sharing the prefix's cache saves less than it costs


@dataclass
class Reply:
    text: str
    stopped: bool  # the model ended its answer itself (an end-of-turn token) within the limit


def check(cancelled: Cancel | None) -> None:
    if cancelled and cancelled():
        raise Cancelled("The check was cancelled; nothing was written.")


def stop_token_ids(tokenizer, generation_config=None) -> set[int]:
    """Every token that ends an answer: the tokenizer's end token and the model's own end-of-turn list."""
    ids = set()
    for source in (getattr(generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(source, int):
            ids.add(source)
        elif source:
            ids.update(source)
    return ids


def shared_prefix(prompts: list[list[int]]) -> int:
    """How many leading tokens every prompt has in common, leaving at least one token of each to run."""
    n = min(len(p) for p in prompts) - 1
    first = prompts[0]
    for i in range(max(0, n)):
        if any(p[i] != first[i] for p in prompts):
            return i
    return max(0, n)


@contextmanager
def padding_aware(model):
    """Run `model` with an attention that honours a padding mask. The trainer's packed-row attention
    (studio.train.attention, "studio_varlen") registers no mask function with transformers, which then passes no
    mask at all: left-padded rows would attend to their pads. Such a model runs on SDPA while it is checked."""
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    current = getattr(base.config, "_attn_implementation", None)
    if current is None or current in ALL_MASK_ATTENTION_FUNCTIONS:
        yield
        return
    base.set_attn_implementation("sdpa")
    try:
        yield
    finally:
        base.set_attn_implementation(current)


class HfEngine:
    """A transformers model as it is in memory now: calling it inside `model.disable_adapter()` gives the base."""

    def __init__(self, model, tokenizer, batch_size: int = GENERATE_BATCH):
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        self.device = next(model.parameters()).device
        self.stop_ids = stop_token_ids(tokenizer, getattr(model, "generation_config", None))
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.stop_ids)
        self.share_prefix = True

    def generate(self, prompts: list[list[int]], max_new_tokens: int, cancelled: Cancel | None = None,
                 progress: Progress | None = None) -> list[Reply]:
        import torch

        replies: list[Reply | None] = [None] * len(prompts)
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode(), padding_aware(self.model):
                for start in range(0, len(order), self.batch_size):
                    check(cancelled)
                    batch = order[start:start + self.batch_size]
                    rows = self._generate_batch([prompts[i] for i in batch], max_new_tokens)
                    for i, new_tokens in zip(batch, rows):
                        replies[i] = self._reply(new_tokens)
                    if progress:
                        progress(min(1.0, (start + len(batch)) / len(order)))
        finally:
            self.model.train(was_training)
        return replies  # type: ignore[return-value]

    def _generate_batch(self, prompts: list[list[int]], max_new_tokens: int) -> list[list[int]]:
        if self.share_prefix and len(prompts) > 1 and shared_prefix(prompts) >= MIN_SHARED_PREFIX:
            try:
                return self._generate(prompts, max_new_tokens, shared_prefix(prompts))
            except (TypeError, ValueError, AttributeError, NotImplementedError):
                # A model whose cache cannot be copied row by row (recurrent layers, an older transformers):
                # plain left-padded batches give the same answers, a little slower.
                self.share_prefix = False
        try:
            return self._generate(prompts, max_new_tokens, 0)
        except (TypeError, ValueError, AttributeError, NotImplementedError):
            # A model whose cache cannot drop rows: transformers' own generate, finished rows computed along.
            return self._library_generate(prompts, max_new_tokens)

    def _library_generate(self, prompts: list[list[int]], max_new_tokens: int) -> list[list[int]]:
        import torch

        width = max(len(p) for p in prompts)
        ids = torch.tensor([[self.pad_id] * (width - len(p)) + p for p in prompts], device=self.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device)
        out = self.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                                  num_beams=1, eos_token_id=sorted(self.stop_ids), pad_token_id=self.pad_id,
                                  use_cache=True, temperature=None, top_p=None, top_k=None)
        return out[:, width:].tolist()

    def _generate(self, prompts: list[list[int]], max_new_tokens: int, prefix: int) -> list[list[int]]:
        """Greedy answers of a left-padded batch: [shared prefix][pads][rest of the prompt]; the pads are masked
        and positions come from the mask, so each row computes exactly what it would alone. A row leaves the
        batch (and its KV cache) as soon as it ends its answer: transformers' `generate` keeps finished rows
        computing until the last one ends, which on a CPU cost a third of the check."""
        import torch
        from transformers import DynamicCache

        width = max(len(p) for p in prompts) - prefix
        ids = [p[:prefix] + [self.pad_id] * (width - len(p) + prefix) + p[prefix:] for p in prompts]
        mask = [[1] * prefix + [0] * (width - len(p) + prefix) + [1] * (len(p) - prefix) for p in prompts]
        input_ids = torch.tensor(ids, device=self.device)
        attention = torch.tensor(mask, device=self.device)
        positions = (attention.cumsum(-1) - 1).masked_fill(attention == 0, 0)  # as transformers' generate
        cache = {self._cache_name(): DynamicCache(config=self.model.config)}
        if prefix:
            self.model(input_ids=input_ids[:1, :prefix], position_ids=positions[:1, :prefix], use_cache=True, **cache)
            next(iter(cache.values())).batch_repeat_interleave(len(prompts))
        logits = self.model(input_ids=input_ids[:, prefix:], attention_mask=attention,
                            position_ids=positions[:, prefix:], use_cache=True, logits_to_keep=1, **cache).logits
        stop = torch.tensor(sorted(self.stop_ids), device=self.device)
        rows, answers = list(range(len(prompts))), [[] for _ in prompts]
        last = positions[:, -1]
        for step in range(max_new_tokens):
            tokens = logits[:, -1].argmax(-1)
            for row, token in zip(rows, tokens.tolist()):
                answers[row].append(token)
            going = ~torch.isin(tokens, stop)
            if step == max_new_tokens - 1 or not going.any():
                break
            if not going.all():
                keep = going.nonzero().squeeze(1)
                next(iter(cache.values())).batch_select_indices(keep)
                rows = [rows[k] for k in keep.tolist()]
                tokens, attention, last = tokens[keep], attention[keep], last[keep]
            attention = torch.cat([attention, attention.new_ones((len(rows), 1))], dim=1)
            last = last + 1
            logits = self.model(input_ids=tokens[:, None], attention_mask=attention, position_ids=last[:, None],
                                use_cache=True, **cache).logits
        return answers

    def _cache_name(self) -> str:
        """The keyword this transformers release takes a KV cache under (`past_key_values` is being renamed)."""
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"

    def _reply(self, new_tokens: list[int]) -> Reply:
        end = next((k for k, t in enumerate(new_tokens) if t in self.stop_ids), None)
        kept = new_tokens if end is None else new_tokens[:end]
        return Reply(self.tokenizer.decode(kept, skip_special_tokens=True).strip(), end is not None)

    def nll(self, rows: list[tuple[list[int], list[int]]], cancelled: Cancel | None = None,
            progress: Progress | None = None) -> tuple[float, int]:
        """(summed negative log-likelihood of the labelled tokens, how many) over `rows` of (ids, labels)."""
        import torch

        from studio.train.loss import lean_loss_head, linear_cross_entropy_sum

        rows = [r for r in rows if len(r[0]) > 1]
        order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
        total, count, done = 0.0, 0, 0
        lean = lean_loss_head(self.model)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode(), padding_aware(self.model):
                for batch in _token_batches(order, [len(r[0]) for r in rows], LOSS_BATCH_TOKENS):
                    check(cancelled)
                    width = max(len(rows[i][0]) for i in batch)
                    ids = torch.tensor([rows[i][0] + [self.pad_id] * (width - len(rows[i][0])) for i in batch],
                                       device=self.device)
                    labels = torch.tensor([rows[i][1] + [IGNORE] * (width - len(rows[i][1])) for i in batch],
                                          device=self.device)
                    mask = (torch.arange(width, device=self.device)[None, :] <
                            torch.tensor([len(rows[i][0]) for i in batch], device=self.device)[:, None]).long()
                    if lean is not None:
                        decoder, head, softcap = lean
                        hidden = decoder(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
                        loss, n = linear_cross_entropy_sum(hidden, head.weight, labels, softcap)
                    else:  # an unusual output layer: the model's own logits, one batch at a time
                        logits = self.model(input_ids=ids, attention_mask=mask, use_cache=False).logits.float()
                        target = labels[:, 1:].reshape(-1)
                        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                                                 target, ignore_index=IGNORE, reduction="sum")
                        n = int((target != IGNORE).sum())
                    total += float(loss)
                    count += n
                    done += len(batch)
                    if progress:
                        progress(done / max(1, len(rows)))
        finally:
            self.model.train(was_training)
        return total, count


def _token_batches(order: list[int], lengths: list[int], budget: int) -> list[list[int]]:
    """Indices in `order` grouped so that each group, padded to its longest row, stays within `budget` tokens."""
    batches, current = [], []
    for i in order:
        if current and lengths[i] * (len(current) + 1) > budget:
            batches.append(current)
            current = []
        current.append(i)
    return batches + ([current] if current else [])


class GgufEngine:
    """An exported GGUF in llama.cpp: what the user runs in Ollama or LM Studio. One prompt at a time (llama.cpp
    reuses the KV cache of the prefix a prompt shares with the one before)."""

    def __init__(self, path: Path, tokenizer, n_ctx: int):
        from llama_cpp import Llama

        path = Path(path)
        if not path.is_file():
            raise ModelError(f"The GGUF file {path} does not exist. Export the run first, or name an existing file.")
        try:
            # llama-cpp-python's own thread count (half the logical CPUs): on a 2-core machine shared with other
            # work, two spinning threads ran 7x slower than one (20 questions: 220 s against 30 s).
            self.llm = Llama(model_path=str(path), n_ctx=n_ctx, logits_all=True, n_gpu_layers=-1, verbose=False)
        except ValueError as exc:
            raise ModelError(f"llama.cpp could not load {path.name}: {exc}") from None
        self.tokenizer = tokenizer
        self.stop_ids = stop_token_ids(tokenizer) | {self.llm.token_eos()}

    def generate(self, prompts: list[list[int]], max_new_tokens: int, cancelled: Cancel | None = None,
                 progress: Progress | None = None) -> list[Reply]:
        replies = []
        for k, ids in enumerate(prompts):
            check(cancelled)
            out, stopped = [], False
            for token in self.llm.generate(ids, temp=0.0, top_k=1, repeat_penalty=1.0):
                if token in self.stop_ids:
                    stopped = True
                    break
                out.append(token)
                if len(out) >= max_new_tokens:
                    break
            replies.append(Reply(self.tokenizer.decode(out, skip_special_tokens=True).strip(), stopped))
            if progress:
                progress((k + 1) / len(prompts))
        return replies

    def nll(self, rows: list[tuple[list[int], list[int]]], cancelled: Cancel | None = None,
            progress: Progress | None = None) -> tuple[float, int]:
        import numpy as np

        from studio.export.parity import log_softmax

        total, count = 0.0, 0
        for k, (ids, labels) in enumerate(rows):
            check(cancelled)
            targets = [(pos, label) for pos, label in enumerate(labels[1:]) if label != IGNORE]
            if not targets:
                continue
            self.llm.reset()
            self.llm.eval(ids)
            logits = log_softmax(np.array(self.llm.scores[: len(ids)], dtype=np.float32))
            total -= float(sum(logits[pos, label] for pos, label in targets))
            count += len(targets)
            if progress:
                progress((k + 1) / len(rows))
        self.llm.reset()
        return total, count

    def close(self) -> None:
        self.llm.close()
