"""The export stage: merged model folder -> GGUF (f16/bf16) -> quantized GGUFs -> Ollama Modelfile."""
from studio.export.pipeline import ExportResult, export_run

__all__ = ["ExportResult", "export_run"]
