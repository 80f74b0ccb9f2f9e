"""The evaluation report: `eval/report.json` in the run folder (the run's trained weights) and
`eval/gguf-<file name>.json` for each exported GGUF checked; the same schema for both. Written atomically
(studio.fileio): a cancelled or failed check leaves the previous report, or none, never half of one.

Schema (version 1); numbers are plain floats, "base" and "tuned" sides always sit side by side:

    schema: 1
    written: "2025-01-31T12:00:00+0000"
    run: run folder
    subject: {kind: "adapter"|"model"|"merged"|"gguf", path, label}   what "tuned" is
    check: "quick"|"thorough" (studio.evaluate.general: which questions and how much prose)
    base: {model: the project's base model name, source: "transformers"|"cached from report.json",
           cached: parts ("general", "task") read from the base cache instead of measured (studio.evaluate.basecache)}
    device: "cpu"|"cuda"; seconds: {total, base, tuned}
    settings: {method, rank, alpha, learning_rate, max_steps, epochs, batch_size, max_seq_len}
    task: null when not measured, else
        source: "the held-out split of data.jsonl"; examples: prompts answered; loss_examples: rows in the loss
        metric: "chrF (sacrebleu 2.6.0)"; answer_tokens: generation limit; closer_margin: chrF points
        base / tuned: {answer_loss: mean NLL per answer token, perplexity, score: mean chrF 0-100 or null}
        closer: prompts where tuned beat base by more than closer_margin
        rows: [{where, prompt, reference, base, tuned, base_score, tuned_score, closer}]
    task_note: why the task was not measured ("" when it was)
    general:
        check: "quick"|"thorough"; questions asked, of: questions in the whole set; prose_tokens read
        version (fingerprint of resources/checks and the check), answer_tokens
        base / tuned: {accuracy 0-1, correct, stopped 0-1 (ended by itself), categories {name: accuracy},
                       prose_perplexity}
        counts: {category: questions}; lost / gained: question ids; rows: [{id, category, question, accepted,
                base, tuned, base_right, tuned_right}]
    verdict: {learned, learned_why, kept, kept_why, headline, tone: good|warn|bad,
              advice: [{say, changes {"section.key": value}}], fix: first changes or null, thresholds}
    trained: (GGUF reports only) the trained weights' tuned numbers from report.json, to show what export changed
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from studio.fileio import atomic_write_text

SCHEMA = 1
REPORT_DIR, REPORT_FILE = "eval", "report.json"


def report_path(run_dir: Path, gguf: Path | None = None) -> Path:
    folder = Path(run_dir) / REPORT_DIR
    return folder / (f"gguf-{Path(gguf).stem}.json" if gguf else REPORT_FILE)


def write_report(report: dict, path: Path) -> dict:
    """Write the report under its final name in one step; returns it as written (with schema and date)."""
    report = {"schema": SCHEMA, "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **report}
    atomic_write_text(path, json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    return report


def read_report(path: Path) -> dict | None:
    """The report at `path`, or None when there is none (or it is from another schema or unreadable)."""
    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) and report.get("schema") == SCHEMA else None


def gguf_reports(run_dir: Path) -> list[dict]:
    folder = Path(run_dir) / REPORT_DIR
    found = [read_report(p) for p in sorted(folder.glob("gguf-*.json"))] if folder.is_dir() else []
    return [r for r in found if r]


def summary_line(report: dict) -> str:
    """One line: the headline and its two numbers, for logs and the CLI."""
    v, task, general = report["verdict"], report.get("task"), report["general"]
    parts = [v["headline"]]
    if task and task["examples"]:
        parts.append(f"closer to your answers on {task['closer']}/{task['examples']}")
    parts.append(f"general questions {general['base']['correct']} → {general['tuned']['correct']}"
                 f"/{general['questions']}")
    return " · ".join(parts)


def export_line(report: dict) -> str:
    """One line for an exported file's check, with the trained weights' numbers beside it when known."""
    task, g, trained = report.get("task"), report["general"], report.get("trained") or {}
    parts = [report["verdict"]["headline"]]
    if task and task["examples"]:
        was = f" (trained weights {trained['task_score']:.0f})" if trained.get("task_score") is not None else ""
        parts.append(f"closer to your answers on {task['closer']}/{task['examples']}, "
                     f"task score {task['tuned']['score']:.0f}{was}")
    was = f" (trained weights {trained['accuracy']:.0%})" if trained.get("accuracy") is not None else ""
    parts.append(f"general questions {g['tuned']['accuracy']:.0%}{was}")
    return " · ".join(parts)


def check_words(general: dict) -> str:
    """Which check a report used, in words: "quick check: 98 of 166 general questions"."""
    check = general.get("check", "thorough")  # reports from before the quick check asked every question
    return f"{check} check: {general['questions']} of {general.get('of', general['questions'])} general questions"


def _clip(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def format_report(report: dict, width: int = 80, lost_shown: int = 8) -> str:
    """The report as text for a terminal: verdict card, every held-out prompt, the forgetting table."""
    v, task, general = report["verdict"], report.get("task"), report["general"]
    out = [f"== {v['headline']} ==",
           f"   Task: {v['learned']}. {v['learned_why']}",
           f"   General knowledge: {v['kept']}. {v['kept_why']}"]
    for tip in v["advice"]:
        out.append(f"   Advice: {tip['say']}")
    cached = " (its answers kept from an earlier check)" if len(report["base"].get("cached", [])) == 2 else ""
    out.append(f"   Checked: {report['subject']['label']} against the base model {report['base']['model']}{cached}, "
               f"{check_words(general)} ({report['seconds']['total']:.0f}s on {report['device']}).")
    if task and task["rows"]:
        out.append(f"\nEvery held-out prompt ({task['source']}); score: {task['metric']}, 0-100, "
                   "+ where the fine-tuned answer is closer to yours than the base's:")
        for k, r in enumerate(task["rows"], 1):
            out.append(f"  {k:>2}. {_clip(r['prompt'], width)}")
            out.append(f"      your answer     : {_clip(r['reference'], width)}")
            out.append(f"      base       {r['base_score']:3.0f}  : {_clip(r['base'], width)}")
            out.append(f"      fine-tuned {r['tuned_score']:3.0f}{'+' if r['closer'] else ' '} : "
                       f"{_clip(r['tuned'], width)}")
        out.append(f"  Loss of your answers {task['base']['answer_loss']:.3f} → {task['tuned']['answer_loss']:.3f} "
                   f"(perplexity {task['base']['perplexity']:.1f} → {task['tuned']['perplexity']:.1f}).")
    elif report.get("task_note"):
        out.append(f"\n{report['task_note']}")
    b, t = general["base"], general["tuned"]
    out.append(f"\nGeneral check ({check_words(general)}, {general['answer_tokens']}-token answers):")
    out.append(f"  {'':<22} {'base':>8} {'fine-tuned':>11}")
    for category, n in general["counts"].items():
        out.append(f"  {category + f' ({n})':<22} {b['categories'][category]:8.0%} {t['categories'][category]:11.0%}")
    out.append(f"  {'all':<22} {b['accuracy']:8.0%} {t['accuracy']:11.0%}")
    out.append(f"  {'ends answers itself':<22} {b['stopped']:8.0%} {t['stopped']:11.0%}")
    out.append(f"  {'prose perplexity':<22} {b['prose_perplexity']:8.2f} {t['prose_perplexity']:11.2f}")
    rows = {r["id"]: r for r in general["rows"]}
    if general["lost"]:
        out.append(f"  Lost ({len(general['lost'])}; the base answered these right):")
        for qid in general["lost"][:lost_shown]:
            r = rows[qid]
            out.append(f"    {_clip(r['question'], 44):<44} base: {_clip(r['base'], 30):<30} now: {_clip(r['tuned'], 40)}")
    if general["gained"]:
        out.append(f"  Gained ({len(general['gained'])}): " +
                   ", ".join(_clip(rows[q]["question"], 40) for q in general["gained"][:4]))
    return "\n".join(out)
