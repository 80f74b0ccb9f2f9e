"""Runs side by side: one row per run of a project, from its frozen project, its events and its report.

Runs of one project are checked on the same held-out split (same data, seed and eval fraction) and the same
general check (the project's [evaluate] check, quick or thorough), so LoRA r8 against r16 against full fine-tuning
is a fair comparison; a row whose report was made with the other check or another check-set version says so.
"""
from __future__ import annotations

from pathlib import Path

from studio.evaluate import general
from studio.evaluate.report import read_report, report_path
from studio.train.events import read_events
from studio.train.runs import EVENTS_FILE, list_runs, load_run_project
from studio.vocabulary import METHODS

COLUMNS = [("run", "run"), ("method", "method"), ("rank", "rank"), ("alpha", "alpha"), ("learning_rate", "learning rate"),
           ("steps", "steps"), ("wall_s", "wall time"), ("peak_gb", "peak GPU memory"),
           ("heldout_loss", "held-out loss"), ("task_score", "task score"), ("closer", "closer than base"),
           ("accuracy_change", "general questions"), ("kept", "forgetting")]


def run_row(run_dir: Path, check: str | None = None) -> dict:
    """The comparison row of one run; numbers it does not have yet are None. `same_checks` says whether its
    report used `check` (default: the run's own [evaluate] check) on today's check set."""
    run_dir = Path(run_dir)
    project = load_run_project(run_dir)
    check = check or project.evaluate.check
    m, t = project.method, project.train
    events = list(read_events(run_dir / EVENTS_FILE))
    done = next((e for e in reversed(events) if e["type"] == "done"), None)
    evals = [e for e in events if e["type"] == "eval"]
    memory = next((e for e in events if e["type"] == "memory"), None)
    started = next((e["time"] for e in events if e["type"] == "progress"), None)
    full = METHODS[m.method].trains_base
    row = {"run": run_dir.name, "method": m.method, "rank": None if full else m.rank,
           "alpha": None if full else m.alpha, "learning_rate": t.learning_rate,
           "steps": done["step"] if done else None,
           "wall_s": round(done["time"] - started, 1) if done and started else None,
           "peak_gb": round(memory["reserved_bytes"] / 2**30, 2) if memory and memory.get("reserved_bytes") else None,
           "heldout_loss": evals[-1]["eval_loss"] if evals else None,
           "task_score": None, "base_task_score": None, "closer": None, "examples": None,
           "accuracy_change": None, "kept": None, "learned": None, "headline": None, "same_checks": None}
    report = read_report(report_path(run_dir))
    if report:
        task = report.get("task")
        g = report["general"]
        row.update(learned=report["verdict"]["learned"], kept=report["verdict"]["kept"],
                   headline=report["verdict"]["headline"], same_checks=g["version"] == general.version(check),
                   check=g.get("check", "thorough"),
                   accuracy_change=g["tuned"]["accuracy"] - g["base"]["accuracy"],
                   base_accuracy=g["base"]["accuracy"], accuracy=g["tuned"]["accuracy"],
                   prose_perplexity_change=g["tuned"]["prose_perplexity"] / g["base"]["prose_perplexity"] - 1,
                   check_seconds=report["seconds"]["total"])
        if task:
            row.update(heldout_loss=task["tuned"]["answer_loss"], task_score=task["tuned"]["score"],
                       base_task_score=task["base"]["score"], closer=task["closer"], examples=task["examples"])
    return row


def runs_table(project) -> list[dict]:
    """Every run of the project, oldest first."""
    return [run_row(folder, project.evaluate.check) for folder in reversed(list_runs(project))]


def cell(row: dict, key: str) -> str:
    """A row's value as the table shows it."""
    value = row.get(key)
    if value is None:
        return "—"
    if key == "learning_rate":
        return f"{value:g}"
    if key == "wall_s":
        minutes, seconds = divmod(int(value), 60)
        return f"{minutes}:{seconds:02d}"
    if key == "peak_gb":
        return f"{value:.1f} GB"
    if key == "heldout_loss":
        return f"{value:.3f}"
    if key == "task_score":
        base = row.get("base_task_score")
        return f"{value:.0f}" + (f" (base {base:.0f})" if base is not None else "")
    if key == "closer":
        return f"{value}/{row['examples']}"
    if key == "accuracy_change":
        return f"{row['base_accuracy']:.0%} → {row['accuracy']:.0%}"
    if key == "kept" and row.get("same_checks") is False:
        return f"{value} ({row['check']} check: not comparable)"
    return str(value)
