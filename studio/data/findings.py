"""What the Data page and `ftstudio data inspect` find in a project's training data: the file's report and,
when the base model is on this computer, its examples' token lengths under that model's chat template."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

_tokenizers: dict[str, object] = {}  # model folder -> tokenizer, loaded once per app run


@dataclass
class Findings:
    report: object  # studio.data.InspectReport
    stats: object | None  # studio.data.TokenStats, None when the model is not on this computer
    tokenizer: object | None
    token_note: str  # why there are no token counts, when there are none


def model_folder(project, progress) -> Path | None:
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


def load_tokenizer(folder: Path):
    if str(folder) not in _tokenizers:
        from transformers import AutoTokenizer

        _tokenizers[str(folder)] = AutoTokenizer.from_pretrained(str(folder))
    return _tokenizers[str(folder)]


def inspect_project_data(project, progress, cancelled) -> Findings:
    """Inspect the training file, then count tokens as training will (when the model is here)."""
    from studio.data import inspect_file, scan, token_stats
    from studio.data.prepare import locate

    settings = project.data
    location = locate(project, settings.train_file)
    report = inspect_file(location, settings.format, settings.columns, progress, cancelled)
    if not report.usable:
        return Findings(report, None, None, "")
    progress("Loading the model's tokenizer", 0.0)
    folder = model_folder(project, progress)
    if folder is None:
        return Findings(report, None, None, "Token counts appear once the base model is on this computer "
                                            "(it is downloaded when training starts).")
    tokenizer = load_tokenizer(folder)
    source, _, pairs = scan(location, report.format, report.mapping)
    rows = (row for row, problem in pairs if problem is None)
    stats = token_stats(rows, tokenizer, project.train.max_seq_len, settings.train_on, settings.system_prompt,
                        name=source.name, unit=source.unit, progress=progress, cancel=cancelled,
                        total=report.usable_rows)
    return Findings(report, stats, tokenizer, "")
