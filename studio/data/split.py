"""The held-out evaluation split: a seeded, reproducible choice of rows the model never trains on."""
from __future__ import annotations

import random
from typing import Sequence, TypeVar

T = TypeVar("T")
MIN_ROWS_TO_SPLIT = 10  # below this, holding rows out leaves too little to learn from and too little to judge


def split_rows(rows: Sequence[T], eval_fraction: float = 0.1, eval_count: int = 0,
               seed: int = 42) -> tuple[list[T], list[T]]:
    """(train, eval): `eval_count` rows when given, else `eval_fraction` of them (at least one), chosen
    with `seed`. Both keep the file's order, so the same settings always give the same split."""
    n = len(rows)
    wanted = eval_count if eval_count > 0 else round(n * eval_fraction) if eval_fraction > 0 else 0
    if wanted <= 0 or n < MIN_ROWS_TO_SPLIT:
        return list(rows), []
    wanted = max(1, min(wanted, n // 2))  # never hold out more than half
    held = set(random.Random(seed).sample(range(n), wanted))
    return [r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held]
