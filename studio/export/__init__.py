"""The export stage: preflight -> merged model folder -> GGUF (f16/bf16) -> quantized GGUFs -> parity check ->
Ollama Modelfile and LM Studio hand-off."""
from studio.export.pipeline import ExportResult, export_run
from studio.export.preflight import Preflight, preflight_export

__all__ = ["ExportResult", "Preflight", "export_run", "preflight_export"]
