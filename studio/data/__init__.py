"""The data stage: read a dataset file, turn each row into chat messages, render with the model's chat
template, tokenize, and mask everything but what the model should learn from the loss.

The GUI uses inspect_file (format, rows, problems), token_stats and highlight (the token view) and
split_rows; the trainer uses prepare_dataset.
"""
from studio.data.formats import FORMATS, Detection, Row
from studio.data.inspect import InspectReport, Problem, inspect_file, scan
from studio.data.prepare import PreparedData, prepare_dataset
from studio.data.split import split_rows
from studio.data.stats import TokenStats, highlight, token_stats
from studio.data.tokenize import IGNORE, TEMPLATES, Example, Piece, TemplateError

__all__ = ["FORMATS", "IGNORE", "TEMPLATES", "Detection", "Example", "InspectReport", "Piece", "PreparedData",
           "Problem", "Row", "TemplateError", "TokenStats", "highlight", "inspect_file", "prepare_dataset",
           "scan", "split_rows", "token_stats"]
