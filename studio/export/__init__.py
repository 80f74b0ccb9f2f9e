"""The export stage: preflight -> merged model folder -> GGUF (f16/bf16) -> quantized GGUFs -> parity check ->
Ollama Modelfile and LM Studio hand-off."""
from studio.export.naming import export_folder
from studio.export.pipeline import ExportResult, export_run, last_export, read_report
from studio.export.preflight import Preflight, preflight_export

__all__ = ["ExportResult", "Preflight", "export_folder", "export_run", "last_export", "preflight_export",
           "read_report"]
