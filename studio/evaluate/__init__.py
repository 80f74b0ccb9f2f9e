"""Did it learn? Did it forget? Every run checked against its base model, in plain words.

task.py (held-out split: answer loss and chrF of greedy answers), general.py (the shipped check set:
accuracy, prose perplexity, stopping), engine.py (batched transformers and llama.cpp), verdict.py (the rules
and advice), report.py (eval/report.json), runner.py (the three ways in), compare.py (runs side by side),
command.py (`ftstudio eval` and `ftstudio runs`).
"""
from studio.evaluate.runner import EvaluationError, evaluate_export, evaluate_in_worker, evaluate_run

__all__ = ["EvaluationError", "evaluate_export", "evaluate_in_worker", "evaluate_run"]
