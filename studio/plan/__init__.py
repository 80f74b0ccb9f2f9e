"""The memory planner: will this training run fit on this GPU, what takes the memory, and what to change.

Pure arithmetic over config.json and the project's settings (no torch import until a GPU is asked about).
"""
from studio.plan.advice import ADVICE, METHOD_ADVICE, advice, method_advice
from studio.plan.estimator import LABELS, Estimate, PlanSettings, as_settings, estimate
from studio.plan.cpu import judge_on_cpu, ram_bytes, this_cpu
from studio.plan.fit import Fix, Verdict, auto_fit, cpu_verdict, start_question, suggest_fixes, verdict
from studio.plan.gpu import GpuInfo, detect_gpu, gpu_from_numbers, measured_peak, planned_gpu
from studio.plan.shapes import Shape, shape_from_config

__all__ = ["ADVICE", "METHOD_ADVICE", "LABELS", "Estimate", "Fix", "GpuInfo", "PlanSettings", "Shape", "Verdict",
           "advice", "as_settings", "auto_fit", "cpu_verdict", "detect_gpu", "estimate", "gpu_from_numbers", "measured_peak",
           "judge_on_cpu", "method_advice", "planned_gpu", "ram_bytes", "shape_from_config", "start_question",
           "suggest_fixes", "this_cpu", "verdict"]
