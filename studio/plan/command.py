"""`ftstudio plan`: the memory estimate, fit verdict and fixes for a project file or for flags."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from studio import units
from studio.errors import StudioError
from studio.plan.estimator import PlanSettings, estimate
from studio.vocabulary import METHODS, OPTIMIZERS
from studio.plan.cpu import memory_parts
from studio.plan.fit import auto_fit, verdict
from studio.plan.gpu import detect_gpu, planned_gpu
from studio.plan.multigpu import SharedEstimate, gpu_count, gpus_to_use, share_plan


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("plan", help="estimate GPU memory for training and say whether it fits",
                              description="Estimate peak GPU memory for a training run, itemized, and whether it "
                                          "fits this computer's GPU. Flags override the project's settings.")
    p.add_argument("project", nargs="?", help="project file (*.ftproj.toml)")
    p.add_argument("--model", help="model: embedded:SmolLM2-135M-Instruct, a model folder, a config.json, or a Hub id")
    p.add_argument("--method", help=f"one of: {', '.join(METHODS)}")
    p.add_argument("--rank", type=int)
    p.add_argument("--alpha", type=int)
    p.add_argument("--targets", help='comma-separated LoRA target modules, or "all-linear"')
    p.add_argument("--seq", type=int, help="cutoff: maximum tokens per example")
    p.add_argument("--batch", type=int, help="examples per step")
    p.add_argument("--accum", type=int, help="gradient accumulation steps")
    p.add_argument("--checkpointing", action=argparse.BooleanOptionalAction, default=None,
                   help="gradient checkpointing")
    p.add_argument("--optimizer", help=f"one of: {', '.join(OPTIMIZERS)}")
    p.add_argument("--gpu-gb", type=float, help="plan for a GPU with this many GB free instead of this computer's")
    p.add_argument("--gpus", type=int, help="plan for this many such GPUs sharing the run (default: the project's "
                                            "train.devices on this computer)")
    p.add_argument("--auto-fit", action="store_true", help="also find the largest batch that fits")
    p.add_argument("--json", action="store_true", help="print JSON (total_bytes, breakdown, verdict, ...)")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    gpu = planned_gpu(args.gpu_gb) if args.gpu_gb else detect_gpu()
    found = 0 if args.gpu_gb else gpu_count()
    try:
        config, settings = _inputs(args)
        gpus = args.gpus or gpus_to_use(_devices(args), found)
        est = share_plan(config, settings, gpus, gpu.free_bytes if gpu.available else None) if gpus > 1 else \
            estimate(config, settings)
    except StudioError as exc:
        print(f"ftstudio plan: {exc}")
        return 2
    ver = verdict(est, gpu, gpus=max(1, found))
    fit = auto_fit(config, settings, gpu) if args.auto_fit else None
    finish = will_it_finish(args, config)
    if args.json:
        out = est.to_dict()
        out["gpu"] = gpu.to_dict()
        out["verdict"] = ver.to_dict()
        if fit is not None:
            out["auto_fit"] = fit
        if finish is not None:
            out["disk"], out["duration"] = finish[0].to_dict(), finish[1]
        print(json.dumps(out, indent=2))
        return 0
    # without a GPU the run lives in RAM: no CUDA context, but the program itself (what the verdict judges)
    parts = memory_parts(est, ver.on_cpu)
    total = sum(n for _, _, n in parts)
    print(f"Estimated peak {'RAM' if ver.on_cpu else 'GPU memory'}: {units.memory(total, 2)}  "
          f"({units.parameters(est.params_total)} parameters, {units.parameters(est.params_trainable)} trainable; "
          f"peak during the {est.peak_phase})"
          + (f", per GPU of {est.gpus} ({est.strategy.upper()})" if isinstance(est, SharedEstimate) else ""))
    for _, label, value in parts:
        print(f"  {label:<46} {units.memory(value, 2):>10}")
    print(ver.sentence)
    for fix in ver.fixes:
        changes = ", ".join(f"{k} = {v}" for k, v in fix.change.items())
        print(f"  - {fix.label}: {changes} -> {units.memory(fix.new_total_bytes, 2)}")
    if fit is not None:
        print("Auto-fit: " + (", ".join(f"{k} = {v}" for k, v in fit.items()) if fit else "no batch size fits."))
    if finish is not None:
        for sentence in finish[0].sentences() + ([finish[1]] if finish[1] else []):
            print(sentence)
    print("Assumptions:")
    for note in est.assumptions:
        print(f"  - {note}")
    return 0


def will_it_finish(args, config: dict):
    """(disk forecast, duration sentence or None) for a project file; None when planning from flags alone."""
    if not args.project:
        return None
    from studio.plan.disk import duration_sentence, forecast_disk
    from studio.project import load_project

    project = load_project(args.project)
    return forecast_disk(project, config), duration_sentence(project)


def _devices(args):
    """The project's train.devices ("auto" without a project)."""
    if not args.project:
        return "auto"
    from studio.project import load_project
    return load_project(args.project).train.devices


def _inputs(args) -> tuple[dict, PlanSettings]:
    """The model's config and the settings: the project file's (or a new project's), changed by the flags
    through the project's own rules, so a wrong value gets the same sentence here as in the project file."""
    from studio.errors import ProjectError
    from studio.presets import apply_changes
    from studio.project import Project, load_project

    project = load_project(args.project) if args.project else Project()
    change = {}
    for flag, key in (("method", "method.method"), ("rank", "method.rank"), ("alpha", "method.alpha"),
                      ("seq", "train.max_seq_len"), ("batch", "train.batch_size"),
                      ("accum", "train.grad_accumulation"), ("checkpointing", "train.gradient_checkpointing"),
                      ("optimizer", "train.optimizer")):
        if getattr(args, flag) is not None:
            change[key] = getattr(args, flag)
    if args.targets:
        change["method.target_modules"] = [t.strip() for t in args.targets.split(",") if t.strip()]
    apply_changes(project, change)
    name = args.model or (project.model.name if args.project else None)
    if not name:
        raise ProjectError("no model: give a project file or --model (for example --model embedded:SmolLM2-135M-Instruct).")
    return _load_config(name, project if args.project else None), PlanSettings.from_project(project)


def _load_config(name: str, project) -> dict:
    """config.json only: the planner needs no weights, so a folder or file with just config.json works."""
    from studio.errors import ModelError

    # a relative folder in a project file is relative to the project's folder
    candidates = [project.resolve(name)] if project is not None else [Path(name).expanduser()]
    for path in candidates:
        file = path / "config.json" if path.is_dir() else path
        if file.is_file() and file.suffix == ".json":
            try:
                return json.loads(file.read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError):
                raise ModelError(f"{file} is not valid JSON.") from None
        if path.is_dir():
            raise ModelError(f"{path} has no config.json; choose the model folder that holds it.")
    from studio.catalog import find
    from studio.models import load_config

    known = find(name)  # catalog models carry their published shape: planning them needs no network
    return dict(known.config) if known is not None and not known.embedded else load_config(name)

