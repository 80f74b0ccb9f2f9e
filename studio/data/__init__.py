"""The data stage: read a dataset file, turn each row into chat messages, render with the model's chat
template, tokenize, and mask everything but what the model should learn from the loss."""
from studio.data.prepare import PreparedData, prepare_dataset

__all__ = ["PreparedData", "prepare_dataset"]
