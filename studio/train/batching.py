"""Turning tokenized examples into batches for the Trainer.

Two ways, chosen by `train.packing`:
- packed (the default): examples are grouped into batches of up to a token budget (batch_size x max_seq_len
  real tokens) and each batch becomes ONE row, the examples back to back with no padding at all. Position ids
  restart at 0 for every example; transformers reads those restarts as sequence boundaries and builds a
  block-diagonal causal mask (or, for varlen attention kernels, the collator's cumulative lengths), so no
  example attends to another.
- padded: `batch_size` examples per batch, each row padded to the longest one in its batch.

In both, the label of each example's first token is IGNORE. The loss shifts labels by one (position t predicts
token t+1), so that label is never a target of its own example anyway; in a packed row, ignoring it stops the
previous example's last token from being trained to predict the next example's first token. It also makes the
Trainer's count of target tokens (`num_items_in_batch`, which normalizes gradient accumulation) exact.
"""
from __future__ import annotations

from bisect import bisect_left, insort

import torch
from torch.utils.data import Dataset

from studio.data.tokenize import IGNORE, Example


def _features(example: Example) -> dict:
    return {"input_ids": example.input_ids, "labels": example.labels}


def _labels_without_first(labels: list[int]) -> list[int]:
    return [IGNORE] + list(labels[1:]) if labels else []


class ExampleDataset(Dataset):
    """One example per item, for padded batches of `batch_size` examples."""

    def __init__(self, examples: list[Example]):
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict:
        return _features(self.examples[index])


def token_budget_batches(lengths: list[int], budget: int) -> list[list[int]]:
    """Group example indices into batches of at most `budget` tokens, as full as possible.

    Best-fit decreasing: the longest examples open batches first and shorter ones fill the room left, so
    batches come out nearly full and each mixes lengths. An example longer than the budget gets a batch alone.
    """
    if budget < 1:
        raise ValueError(f"the token budget must be at least 1, not {budget}")
    batches: list[list[int]] = []
    room: list[tuple[int, int]] = []  # (tokens still free, batch index), sorted, for batches that have room
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        n = lengths[index]
        k = bisect_left(room, (n, -1))  # the fullest batch that still has room for n tokens
        if k < len(room):
            free, b = room.pop(k)
        else:
            free, b = budget, len(batches)
            batches.append([])
        batches[b].append(index)
        if free - n > 0:
            insort(room, (free - n, b))
    return batches


class PackedDataset(Dataset):
    """One whole token-budget batch per item: use it with a DataLoader batch size of 1 and PackedCollator."""

    def __init__(self, examples: list[Example], token_budget: int):
        self.examples = examples
        self.token_budget = token_budget
        self.batches = token_budget_batches([len(e.input_ids) for e in examples], token_budget)

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> list[dict]:
        return [_features(self.examples[i]) for i in self.batches[index]]


class PackedCollator:
    """All examples of a batch in one row, with per-example position ids and no attention mask.

    `with_seq_lens` also adds the cumulative sequence lengths that varlen attention kernels read
    (transformers' `cu_seq_lens_q/k`, `max_length_q/k` keyword names).
    """

    def __init__(self, with_seq_lens: bool = False):
        self.with_seq_lens = with_seq_lens

    def __call__(self, features: list) -> dict:
        # The Trainer hands over a list of dataset items; a PackedDataset item is itself a list of examples.
        examples = [f for item in features for f in (item if isinstance(item, list) else [item])]
        ids, labels, positions, bounds = [], [], [], [0]
        for f in examples:
            n = len(f["input_ids"])
            ids.extend(f["input_ids"])
            labels.extend(_labels_without_first(f["labels"]))
            positions.extend(range(n))
            bounds.append(bounds[-1] + n)
        batch = {"input_ids": torch.tensor([ids], dtype=torch.long),
                 "labels": torch.tensor([labels], dtype=torch.long),
                 "position_ids": torch.tensor([positions], dtype=torch.long)}
        if self.with_seq_lens:
            cu = torch.tensor(bounds, dtype=torch.int32)
            longest = max(b - a for a, b in zip(bounds, bounds[1:]))
            batch.update(cu_seq_lens_q=cu, cu_seq_lens_k=cu, max_length_q=longest, max_length_k=longest)
        return batch


class PaddedCollator:
    """Pads each batch to its own longest example (not to the cutoff), masking pads from the loss."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict]) -> dict:
        longest = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), longest), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(features), longest), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(features), longest), dtype=torch.long)
        for row, f in enumerate(features):
            n = len(f["input_ids"])
            ids[row, :n] = torch.tensor(f["input_ids"])
            labels[row, :n] = torch.tensor(_labels_without_first(f["labels"]))
            mask[row, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}
