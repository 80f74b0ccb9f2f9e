"""Fine-Tune Studio's headless core: data -> plan -> train -> merge -> export, with no Qt anywhere."""
__version__ = "0.1.0"
