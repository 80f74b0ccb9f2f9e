"""From the project's data settings to tokenized train and eval examples (cached on disk)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from studio.data import cache
from studio.data.formats import Row
from studio.data.inspect import fingerprint, scan
from studio.data.split import split_rows
from studio.data.tokenize import IGNORE, Example, TemplateError, tokenize_conversation, tokenize_text
from studio.errors import Cancelled, DataError
from studio.hub import is_hub_id
from studio.progress import Progress



@dataclass
class PreparedData:
    train: list[Example]
    eval: list[Example]
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (row number, reason naming the file)
    from_cache: bool = False

    @property
    def train_tokens(self) -> int:
        return sum(len(e.input_ids) for e in self.train)


def locate(project, name: str) -> str:
    """A data file named in the project: a path relative to the project's folder, or a Hub dataset id."""
    path = project.resolve(name)
    if not path.exists() and is_hub_id(name):
        return name
    return str(path)


def prepare_dataset(project, tokenizer, progress: Progress | None = None,
                    cancel: Callable[[], bool] | None = None, use_cache: bool = True) -> PreparedData:
    settings, max_len = project.data, project.train.max_seq_len
    if not settings.train_file:
        raise DataError("No dataset file is chosen. Pick one on the Data page or set [data] train_file.")
    train_at = locate(project, settings.train_file)
    eval_at = locate(project, settings.eval_file) if settings.eval_file else ""
    key = cache.cache_key(train=cache.content_hash(train_at), eval=eval_at and cache.content_hash(eval_at),
                          tokenizer=cache.tokenizer_hash(tokenizer), data=project.to_dict()["data"],
                          max_len=max_len, seed=project.train.seed)
    if use_cache and (hit := cache.load(key)) is not None:
        if progress:
            progress("Loaded the tokenized dataset from the cache", 1.0)
        return PreparedData(*hit, from_cache=True)

    out = PreparedData([], [])
    rows, eval_rows, train_src, eval_src = read_split(project, out.skipped, progress, cancel)

    total = max(1, len(rows) + len(eval_rows))
    longest_cut = 0  # the longest example the cutoff left without an answer: the cutoff that would keep it
    for target, source, src in ((out.train, rows, train_src), (out.eval, eval_rows, eval_src)):
        for row in source:
            if cancel and cancel():
                raise Cancelled("Preparing the dataset was cancelled.")
            where = src.where(row.number)
            try:
                examples = _tokenize(tokenizer, row, settings, max_len)
            except TemplateError as exc:
                if not settings.skip_bad_rows:
                    raise DataError(f"{where}: {exc}.") from None
                out.skipped.append((row.number, f"{where}: {exc}."))
                continue
            if all(label == IGNORE for e in examples for label in e.labels):
                out.skipped.append((row.number, f"{where}: the answer starts after the {max_len}-token cutoff, "
                                                "so nothing is left to learn."))
                longest_cut = max(longest_cut, _full_length(tokenizer, row, settings))
                continue
            target.extend(examples)
            done = len(out.train) + len(out.eval)
            if progress and done % 200 == 0:
                progress("Tokenizing", done / total)
    if not out.train:
        if longest_cut:
            from studio.data.stats import CUTOFF_STEP

            better = max(CUTOFF_STEP, -(-longest_cut // CUTOFF_STEP) * CUTOFF_STEP)
            raise DataError(f"No usable training example in {settings.train_file}: the cutoff of {max_len} tokens "
                            f"(train.max_seq_len, \"Cutoff\" on the Method page) is too short, every answer starts "
                            f"after it. Raise the cutoff to {better} tokens (the Data page offers it).")
        raise DataError(f"No usable training example in {settings.train_file}.")
    cache.save(key, out.train, out.eval, out.skipped)
    if progress:
        progress("Tokenizing", 1.0)
    return out


def read_split(project, skipped: list | None = None, progress=None, cancel=None):
    """(train rows, eval rows, train source, eval source): the project's usable rows, duplicates dropped when
    asked, split with the project's seed. The trainer, the Test page's held-out examples and the export check
    all use this, so "held out" means the same rows everywhere."""
    settings = project.data
    skipped = [] if skipped is None else skipped
    train_at = locate(project, settings.train_file)
    eval_at = locate(project, settings.eval_file) if settings.eval_file else ""
    rows, train_src = _read(train_at, settings, skipped, progress, cancel, settings.sheet)
    eval_rows, eval_src = _read(eval_at, settings, skipped, progress, cancel) if eval_at else ([], train_src)
    if settings.drop_duplicates:
        rows = _drop_duplicates(rows, set(), skipped, train_src)
        if eval_at:  # an eval row that is also a training row would flatter the eval loss
            eval_rows = _drop_duplicates(eval_rows, {fingerprint(r) for r in rows}, skipped, eval_src)
    if not eval_at:
        rows, eval_rows = split_rows(rows, settings.eval_fraction, seed=project.train.seed)
    return rows, eval_rows, train_src, eval_src


def with_system(messages: list[dict], system_prompt: str) -> list[dict]:
    """The conversation as trained: the project's system prompt first, unless the row brings its own."""
    if system_prompt and messages[0]["role"] != "system":
        return [{"role": "system", "content": system_prompt}] + messages
    return messages


def _read(location: str, settings, skipped: list, progress, cancel, sheet: str = ""):
    """(every usable row, the source); problems go to `skipped`, or stop all when the user chose to stop.
    The chosen sheet is the training workbook's; an eval workbook is read from its first sheet with data."""
    source, _, records = scan(location, settings.format, settings.columns, progress, cancel, sheet)
    rows = []
    for row, problem in records:
        if problem is None:
            rows.append(row)
        elif settings.skip_bad_rows:
            skipped.append((problem.row, problem.message))
        else:
            raise DataError(f"{problem.message} Fix it, or choose to skip bad rows.")
    return rows, source


def _drop_duplicates(rows: list[Row], seen: set[int], skipped: list, source) -> list[Row]:
    kept = []
    for row in rows:
        mark = fingerprint(row)
        if mark in seen:
            skipped.append((row.number, f"{source.where(row.number)}: repeats an earlier row (duplicates removed)."))
        else:
            seen.add(mark)
            kept.append(row)
    return kept


def _full_length(tokenizer, row: Row, settings) -> int:
    """An example's length in tokens before any cutoff."""
    try:
        return sum(len(e.input_ids) for e in _tokenize(tokenizer, row, settings, 1 << 30))
    except TemplateError:
        return 0


def _tokenize(tokenizer, row: Row, settings, max_len: int) -> list[Example]:
    if row.text is not None:
        return tokenize_text(tokenizer, row.text, max_len)
    messages = with_system(row.messages, settings.system_prompt)
    return [tokenize_conversation(tokenizer, messages, max_len, settings.train_on)]
