"""The token view: how long each example is for the chosen model, what the length cutoff removes, and
which tokens the model is trained on."""
from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Callable, Iterable

from studio.data.formats import Row
from studio.data.inspect import EVERY, Problem
from studio.data.tokenize import IGNORE, Piece, TemplateError, encode_row, pieces
from studio.errors import Cancelled
from studio.progress import Progress

CUTOFF_STEP = 64  # a suggested cutoff is a multiple of this

@dataclass
class TokenStats:
    max_seq_len: int
    rows: array = field(default_factory=lambda: array("q"))  # row number of each example
    lengths: array = field(default_factory=lambda: array("q"))  # tokens per example before the cut
    trained: array = field(default_factory=lambda: array("q"))  # trained tokens per example after the cut
    histogram: list[tuple[int, int, int]] = field(default_factory=list)  # (above, up_to, count)
    truncated: int = 0  # conversations longer than the cutoff
    tokens_lost: int = 0  # tokens those conversations lose
    split_documents: int = 0  # plain-text documents longer than the cutoff, split into windows (nothing lost)
    total_tokens: int = 0  # tokens the model sees, after the cut
    problems: list[Problem] = field(default_factory=list)  # rows the template cannot render
    answer_starts: array = field(default_factory=lambda: array("q"))  # first trained token of each example
    name: str = "the dataset"  # the file, as problems name it
    unit: str = "row"

    @property
    def examples(self) -> int:
        return len(self.lengths)

    @property
    def longest(self) -> int:
        return max(self.lengths, default=0)

    @property
    def mean(self) -> float:
        return sum(self.lengths) / len(self.lengths) if self.lengths else 0.0

    def longer_than(self, cutoff: int) -> list[int]:
        """The lengths of the examples a cutoff would cut (or, for plain text, split into windows)."""
        return [n for n in self.lengths if n > cutoff]

    def no_answer_rows(self, cutoff: int) -> list[int]:
        """The row numbers of the examples whose answer starts after `cutoff` tokens: nothing left to learn,
        so training skips them."""
        return [row for row, start in zip(self.rows, self.answer_starts) if start >= cutoff]

    def problems_at(self, cutoff: int) -> list[Problem]:
        """The rows the template cannot render, and those a cutoff leaves without an answer."""
        return self.problems + [Problem(row, f"{self.name}, {self.unit} {row}: the answer starts after the "
                                             f"{cutoff}-token cutoff, so nothing is left to learn.")
                                for row in self.no_answer_rows(cutoff)]

    def cutoff_keeping_all(self) -> int:
        """A cutoff just above the longest example (a multiple of CUTOFF_STEP): nothing is cut."""
        return max(CUTOFF_STEP, -(-self.longest // CUTOFF_STEP) * CUTOFF_STEP)

    def suggested_cutoff(self, cutoff: int) -> int | None:
        """A cutoff just above the longest example, when it is well below `cutoff` (at most two thirds of it):
        less activation memory, and nothing is cut. None when the cutoff is about right already."""
        suggested = self.cutoff_keeping_all()
        return suggested if suggested * 1.5 <= cutoff else None

    def to_dict(self) -> dict:
        return {"max_seq_len": self.max_seq_len, "examples": self.examples, "longest": self.longest,
                "mean": round(self.mean, 1), "truncated": self.truncated, "tokens_lost": self.tokens_lost,
                "split_documents": self.split_documents, "total_tokens": self.total_tokens,
                "histogram": self.histogram,
                "problems": [p.__dict__ for p in self.problems_at(self.max_seq_len)]}


def token_stats(rows: Iterable[Row], tokenizer, max_seq_len: int, train_on: str = "assistant",
                system_prompt: str = "", chat_template: str | None = None, name: str = "the dataset",
                unit: str = "row", progress: Progress | None = None, cancel: Callable[[], bool] | None = None,
                total: int = 0) -> TokenStats:
    """Tokenize every usable row as training will, and count lengths and what the cutoff removes."""
    stats = TokenStats(max_seq_len, name=name, unit=unit)
    for count, row in enumerate(rows, start=1):
        if count % (EVERY // 10) == 0:
            if cancel and cancel():
                raise Cancelled("Counting tokens was cancelled.")
            if progress:
                progress("Counting tokens", count / total if total else 0.0)
        try:
            _, ids, _, labels = encode_row(tokenizer, row, train_on, system_prompt, chat_template)
        except TemplateError as exc:
            stats.problems.append(Problem(row.number, f"{name}, {unit} {row.number}: {exc}."))
            continue
        n = len(ids)
        stats.rows.append(row.number)
        stats.lengths.append(n)
        stats.answer_starts.append(0 if row.text is not None else
                                   next((i for i, label in enumerate(labels) if label != IGNORE), n))
        if row.text is not None:
            stats.split_documents += n > max_seq_len
            stats.trained.append(n)
            stats.total_tokens += n
            continue
        kept = sum(1 for label in labels[:max_seq_len] if label != IGNORE)
        stats.trained.append(kept)
        stats.total_tokens += min(n, max_seq_len)
        if n > max_seq_len:
            stats.truncated += 1
            stats.tokens_lost += n - max_seq_len
    stats.histogram = histogram(stats.lengths, max_seq_len)
    if progress:
        progress("Counting tokens", 1.0)
    return stats


def histogram(lengths: array, cutoff: int, below: int = 10, most: int = 30) -> list[tuple[int, int, int]]:
    """(above, up_to, count) bins of equal width, `below` of them up to the cutoff so that it is a bin edge
    (an example of exactly `cutoff` tokens fits), then more up to the longest; the last takes the rest."""
    if not lengths:
        return []
    n = min(most, max(below, (max(lengths) - 1) * below // cutoff + 1))
    counts = [0] * n
    for length in lengths:
        counts[min(n - 1, max(0, length - 1) * below // cutoff)] += 1
    edge = [-(-i * cutoff // below) for i in range(n + 1)]  # ceil(i * cutoff / below)
    return [(edge[i], edge[i + 1], c) for i, c in enumerate(counts)]


def highlight(row: Row | list[dict], tokenizer, train_on: str = "assistant", max_seq_len: int | None = None,
              system_prompt: str = "", chat_template: str | None = None) -> list[Piece]:
    """The rendered example as stretches of text, each marked trained or not (and cut by the limit).

    Raises studio.data.tokenize.TemplateError when the template cannot render it."""
    if isinstance(row, list):
        row = Row(0, messages=row)
    encoded = encode_row(tokenizer, row, train_on, system_prompt, chat_template)
    return pieces(tokenizer, encoded, max_seq_len)
