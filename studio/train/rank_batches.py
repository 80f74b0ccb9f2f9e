"""Packed batches shared out across the processes of a multi-GPU run, and the order every run reads them in.

One optimizer step on one GPU reads `grad_accumulation` token-budget batches (studio.train.batching). On N
GPUs the step must read the same batches, or the global batch and the learning-rate schedule would change
with the number of GPUs. So each batch is cut into N shares of about equal tokens, and process r trains on
share r of every batch: the N processes together see exactly the examples one GPU would, step for step, and
the Trainer, which counts the targets of all processes before dividing the loss, computes the same loss and
the same gradient (up to the order of floating-point sums).

The order is what `BatchOrder` says: the batches shuffled by the seed and the epoch, each followed by its
shares. Accelerate gives item i of the order to process i mod N, so process r receives share r of each batch
in turn. A one-GPU run uses the same order with N = 1, so one and N GPUs read the batches in the same order.
"""
from __future__ import annotations

from torch.utils.data import Dataset, Sampler

from studio.data.tokenize import IGNORE
from studio.train.batching import PackedDataset


def split_by_tokens(lengths: list[int], parts: int) -> list[list[int]]:
    """Indices into `lengths` cut into `parts` groups of about equal total length (longest first, each to the
    lightest group). A group stays empty when there are fewer examples than parts."""
    groups: list[list[int]] = [[] for _ in range(parts)]
    load = [0] * parts
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        lightest = min(range(parts), key=lambda g: (load[g], g))
        groups[lightest].append(index)
        load[lightest] += lengths[index]
    return [sorted(group) for group in groups]


class RankShares(Dataset):
    """Item b * ranks + r: process r's share of token-budget batch b (a list of examples, for PackedCollator)."""

    def __init__(self, packed: PackedDataset, ranks: int):
        self.packed = packed
        self.ranks = ranks
        self.batches = packed.batches  # BatchOrder counts these
        self.shares = []
        for batch in packed.batches:
            lengths = [len(packed.examples[i].input_ids) for i in batch]
            self.shares.append([[batch[k] for k in group] for group in split_by_tokens(lengths, ranks)])

    def __len__(self) -> int:
        return len(self.shares) * self.ranks

    def __getitem__(self, index: int) -> list[dict]:
        batch, rank = divmod(index, self.ranks)
        share = self.shares[batch][rank]
        if not share:
            # A batch of fewer examples than processes (one long example): this process still takes part in
            # the step, with one token that has nothing to learn, so its loss adds zero and its gradient too.
            first = self.packed.examples[self.shares[batch][0][0]]
            return [{"input_ids": first.input_ids[:1], "labels": [IGNORE]}]
        return [{"input_ids": self.packed.examples[i].input_ids, "labels": self.packed.examples[i].labels}
                for i in share]


class BatchOrder(Sampler):
    """Batches in a shuffled order fixed by the seed and the epoch, each followed by its other shares.

    The Trainer calls `set_epoch` at every epoch (also when resuming), so a resumed run reads the same order,
    and every process computes the same order without talking to the others.
    """

    def __init__(self, batches: int, ranks: int, seed: int):
        self.batches, self.ranks, self.seed = batches, ranks, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.batches * self.ranks

    def __iter__(self):
        import torch

        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        for batch in torch.randperm(self.batches, generator=generator).tolist():
            yield from range(batch * self.ranks, (batch + 1) * self.ranks)


def shared_out(dataset, ranks: int):
    """The training set as this run's processes read it: packed batches cut into `ranks` shares."""
    if ranks > 1 and isinstance(dataset, PackedDataset):
        return RankShares(dataset, ranks)
    return dataset
