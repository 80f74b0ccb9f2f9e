"""What the Data page and `ftstudio data inspect` find in a project's training data: the file's report and,
when the base model is on this computer, its examples' token lengths under that model's chat template, and
how the eval split divides the rows."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from studio.data.inspect import InspectReport
from studio.data.split import split_rows
from studio.data.stats import TokenStats
from studio.progress import Cancel, Progress


@dataclass
class Findings:
    report: InspectReport
    stats: TokenStats | None  # None when the model is not on this computer (or no row is usable)
    tokenizer: object | None
    token_note: str  # why there are no token counts, when there are none

    def usable_rows(self, project) -> int:
        """The rows training can use under the project's cutoff: readable rows, less those whose answer starts
        after the cutoff (nothing left to learn; training skips them)."""
        if self.stats is None:
            return self.report.usable_rows
        return max(0, self.report.usable_rows - len(self.stats.no_answer_rows(project.train.max_seq_len)))

    def cutoff_problem(self, project) -> tuple[str, int | None]:
        """(a sentence naming the cutoff and what it costs, the cutoff to use instead) when the cutoff leaves
        examples without an answer; ("", None) when it does not."""
        if self.stats is None:
            return "", None
        cutoff = project.train.max_seq_len
        lost = len(self.stats.no_answer_rows(cutoff))
        if not lost:
            return "", None
        better = self.stats.cutoff_keeping_all()
        share = "every example" if lost == self.stats.examples else f"{lost:,} of {self.stats.examples:,} examples"
        return (f"The cutoff of {cutoff:,} tokens (Method page, \"Cutoff\"; train.max_seq_len) is too short: in "
                f"{share} the answer starts after it, so there is nothing left to learn and training skips "
                f"{'them' if lost > 1 else 'it'}. A cutoff of {better:,} tokens keeps every example whole."), better

    def split(self, project) -> tuple[int, int]:
        """(training examples, held-out examples) as training will split the usable rows."""
        usable = self.usable_rows(project) - (self.report.duplicates if project.data.drop_duplicates else 0)
        train, held = split_rows(range(max(0, usable)), project.data.eval_fraction, seed=project.train.seed)
        return len(train), len(held)


def model_folder(project, progress: Progress | None = None) -> Path | None:
    """The base model's folder on this computer (converting the embedded model once), or None."""
    from studio.catalog import find, hub_cache_folder
    from studio.models import is_embedded, resolve_model

    name = project.model.name
    entry = find(name)
    if is_embedded(name) or (entry is not None and entry.embedded):
        return resolve_model(entry.id if entry else name, progress)
    if entry is not None:
        return hub_cache_folder(entry.hub_id)
    local = project.resolve(name)
    return local if (local / "config.json").is_file() else hub_cache_folder(name)


@lru_cache(maxsize=8)
def load_tokenizer(folder: Path):
    """A model folder's tokenizer, loaded once per process (the Data page asks again on every change). Never
    with the model's own code: counting tokens is no reason to run it (training asks for consent)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False)


def count_tokens(location: str, report: InspectReport, tokenizer, max_seq_len: int, train_on: str,
                 system_prompt: str = "", progress: Progress | None = None, cancel: Cancel | None = None) -> TokenStats:
    """Token lengths of the usable rows of an inspected file (its sheet, for a workbook), rendered and cut as
    training will."""
    from studio.data import scan, token_stats

    source, _, pairs = scan(location, report.format, report.mapping, cancel=cancel, sheet=report.sheet)
    rows = (row for row, problem in pairs if problem is None)
    return token_stats(rows, tokenizer, max_seq_len, train_on, system_prompt, name=source.name, unit=source.unit,
                       progress=progress, cancel=cancel, total=report.usable_rows)


def inspect_project_data(project, progress: Progress, cancelled: Cancel) -> Findings:
    """Inspect the training file, then count tokens as training will (when the model is here)."""
    from studio.data import inspect_file
    from studio.data.prepare import locate

    settings = project.data
    location = locate(project, settings.train_file)
    report = inspect_file(location, settings.format, settings.columns, progress, cancelled, sheet=settings.sheet)
    if not report.usable:
        return Findings(report, None, None, "")
    progress("Loading the model's tokenizer", 0.0)
    folder = model_folder(project, progress)
    if folder is None:
        return Findings(report, None, None, "Token counts appear once the base model is on this computer "
                                            "(it is downloaded when training starts).")
    tokenizer = load_tokenizer(folder)
    stats = count_tokens(location, report, tokenizer, project.train.max_seq_len, settings.train_on,
                         settings.system_prompt, progress, cancelled)
    return Findings(report, stats, tokenizer, "")
