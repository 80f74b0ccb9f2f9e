"""`ftstudio`: every stage from the command line, on the same project file the GUI edits.

With no arguments it opens the desktop app. Heavy libraries are imported inside the commands that need them,
so `ftstudio --help` answers at once.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from studio.data.command import register as register_data
from studio.errors import StudioError
from studio.evaluate.command import register as register_evaluate
from studio.plan.command import register as register_plan

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class Bar:
    """A one-line terminal progress bar that stays quiet when output is not a terminal."""

    def __init__(self, label: str):
        self.label, self.last = label, -1.0
        self.tty = sys.stderr.isatty()

    def __call__(self, message: str, fraction: float) -> None:
        fraction = min(1.0, max(0.0, fraction or 0.0))
        if self.tty:
            filled = int(fraction * 30)
            sys.stderr.write(f"\r{self.label}: [{'#' * filled}{'.' * (30 - filled)}] {fraction:4.0%} {message[:50]:<50}")
            if fraction >= 1.0:
                sys.stderr.write("\n")
        elif fraction - self.last >= 0.25 or fraction >= 1.0:  # a line per quarter since the last line written
            sys.stderr.write(f"{self.label}: {fraction:.0%} {message}\n")
        else:
            return
        self.last = fraction
        sys.stderr.flush()


def print_training_event(event: dict, bar: Bar) -> None:
    kind = event["type"]
    if kind == "progress":
        eta = event.get("eta_s")
        tps = event.get("tokens_per_s")
        detail = f"step {event['step']}/{event['total_steps']}" + (f", {tps:.0f} tok/s" if tps else "") + \
                 (f", {eta:.0f}s left" if eta is not None else "")
        bar(detail, event.get("fraction", 0.0))
    elif kind == "metrics":
        bar(f"step {event['step']} loss {event['loss']:.4f}", bar.last)
    elif kind == "eval":
        sys.stderr.write(f"\n  eval loss at step {event['step']}: {event['eval_loss']:.4f}\n")
    elif kind == "log" and not event.get("raw"):
        sys.stderr.write(f"\n  {event['message']}\n" if bar.tty else f"  {event['message']}\n")
    elif kind == "error":
        sys.stderr.write(f"\nError: {event['message']}\n")


def train_command(args) -> int:
    from studio.project import load_project
    from studio.train import run_training
    from studio.train.runs import PROJECT_FILE

    target = user_path(args.target)
    bar = Bar("Training")
    if target.is_dir() and (target / PROJECT_FILE).is_file():
        run_dir, final = run_training(run_dir=target, resume=args.resume, on_event=lambda e: print_training_event(e, bar))
    else:
        project = load_project(target)
        if args.steps:
            project.train.max_steps = args.steps
        run_dir, final = run_training(project, on_event=lambda e: print_training_event(e, bar))
    if final["type"] == "error":
        sys.stderr.write(f"Training failed: {final['message']}\n")
        if final.get("details"):
            sys.stderr.write(final["details"] + "\n")
        return EXIT_FAILED
    print(f"Run folder: {run_dir}")
    if final.get("output") is None:
        print(final.get("message") or "Nothing was trained.")
        return EXIT_OK
    print(f"Trained weights: {final['output']}" + (" (stopped early; resume with --resume)" if final.get("stopped") else ""))
    return EXIT_OK


def user_path(text: str) -> Path:
    """A path typed by the user, made absolute once, here at the edge: every stage and every child process
    after this sees the same folder whatever its own working directory is."""
    return Path(text).expanduser().resolve()


def merge_command(args) -> int:
    from studio.merge import merge_run

    print(f"Merged model: {merge_run(user_path(args.run_dir), Bar('Merging'))}")
    return EXIT_OK


def print_export_result(result) -> None:
    for quant, path in result.files.items():
        flag = "CHECK FAILED" if quant in result.failed else "ok"
        print(f"  {quant.upper():>7}: {path} ({path.stat().st_size / 1e6:.1f} MB) {flag}")
    for quant, why in result.failed.items():
        if quant not in result.files:
            print(f"  {quant.upper():>7}: FAILED - {why}")
    if result.parity:
        print(f"\n  {'type':>7}  {'tokens':>6}  {'top-1':>6}  {'mean KL':>8}  {'ppl':>7}  verdict")
        for quant, check in result.parity.items():
            print(f"  {quant.upper():>7}  {'same' if check['tokenization_ok'] else 'DIFFER':>6}  {check['top1']:6.1%}  "
                  f"{check['mean_kl']:8.4f}  {check['ppl_ratio'] - 1:+7.2%}  "
                  f"{'passed' if check['passed'] else 'FAILED'} ({check['rule']})"
                  + ("" if check.get("meets_target") is None else
                     f"; quality target {check['target']}: {'met' if check['meets_target'] else 'missed'}"))
    if result.preflight:
        for warning in result.preflight.warnings:
            print(f"  Note: {warning}")
    for line in result.handoff:
        print(f"  {line}")
    for problem in result.problems:
        print(f"  Problem: {problem}")
    if result.modelfile:
        print(f"  Ollama Modelfile: {result.modelfile}")
    if result.evaluation:
        print(f"  Check: {result.evaluation['summary']}")
    if result.report_path:
        print(f"  Report: {result.report_path}")


def print_export_plan(preflight) -> None:
    """What will be written and how big, before anything is."""
    from studio.export.preflight import gigabytes

    sys.stderr.write(f"Model: {preflight.architecture}, tokenizer {preflight.tokenizer}\n")
    for quant, size in preflight.sizes.items():
        sys.stderr.write(f"  {quant.upper():>7}: about {gigabytes(size)}\n")
    sys.stderr.write(f"  Disk: needs about {gigabytes(preflight.needed_bytes)}, {gigabytes(preflight.free_bytes)} free\n")


def export_command(args) -> int:
    from studio.export import export_run
    from studio.export.adapter import export_adapter
    from studio.export.preflight import preflight_export
    from studio.train.runs import load_run_project

    run_dir = user_path(args.run_dir)
    quants = [q.strip().lower() for q in args.quant.split(",") if q.strip()] if args.quant else None
    out_dir = user_path(args.out) if args.out else None
    adapter = export_adapter(run_dir, out_dir, args.overwrite, Bar("Adapter")) if args.adapter else None
    if args.adapter and not quants:  # --adapter alone: only the adapter, for users who keep the base
        print(json.dumps({"adapter": str(adapter)}, indent=2) if args.json else f"  LoRA adapter GGUF: {adapter}")
        return EXIT_OK
    quants = quants or load_run_project(run_dir).export.quant
    preflight = preflight_export(run_dir, quants, out_dir, args.overwrite)
    if preflight.ok and not args.json:
        print_export_plan(preflight)
    result = export_run(run_dir, quants, Bar("Exporting"), out_dir=out_dir, ollama=args.ollama,
                        lmstudio=args.lmstudio, overwrite=args.overwrite, check=not args.no_check)
    if args.json:
        print(json.dumps({"files": {q: str(p) for q, p in result.files.items()},
                          "adapter": str(adapter) if adapter else None,
                          "modelfile": str(result.modelfile) if result.modelfile else None,
                          "failed": result.failed, "parity": result.parity, "handoff": result.handoff,
                          "warnings": result.preflight.warnings, "seconds": result.seconds,
                          "evaluation": result.evaluation,
                          "problems": result.problems,
                          "report": str(result.report_path) if result.report_path else None}, indent=2,
                         ensure_ascii=False))
    else:
        if adapter:
            print(f"  LoRA adapter GGUF: {adapter}")
        print_export_result(result)
    return EXIT_FAILED if result.failed or result.problems else EXIT_OK


def chat_command(args) -> int:
    from studio.chat import GgufChat

    chat = GgufChat(user_path(args.gguf))
    messages = [{"role": "user", "content": args.prompt}]
    for piece in chat.stream(messages, max_tokens=args.max_tokens):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return EXIT_OK


def new_command(args) -> int:
    from studio.project import Project, save_project

    path = Path(args.path)
    if not path.name.endswith(".ftproj.toml"):
        path = path.with_name(path.name + ".ftproj.toml")
    if path.exists() and not args.force:
        raise StudioError(f"{path} already exists; choose another name or pass --force to replace it.")
    project = Project(name=path.name.removesuffix(".ftproj.toml"))
    if args.model:
        project.model.name = args.model
    if args.data:
        project.data.train_file = os.path.relpath(Path(args.data).resolve(), path.resolve().parent)
    if args.method:
        project.method.method = args.method
        project.validate()
    if args.preset:
        from studio.presets import apply_preset

        apply_preset(project, args.preset)  # after the method: a preset's learning rate depends on it
    print(f"Project written: {save_project(project, path)}")
    return EXIT_OK


def setup_command(args) -> int:
    from studio.export.converter import install_converter
    from studio.models import embedded_model_dir

    print(f"GGUF converter: {install_converter(Bar('Converter'))}")
    print(f"Embedded model: {embedded_model_dir(Bar('Embedded model'))}")
    return EXIT_OK


def demo_command(args) -> int:
    from studio.demo import run_demo

    return run_demo(steps=args.steps, out_dir=user_path(args.out))


def gui_command(args) -> int:
    try:
        from ui.app import main as gui_main
    except ImportError:
        raise StudioError("The desktop app is not part of this build yet; every stage works from the command "
                          "line: try `ftstudio demo`, or `ftstudio --help`.") from None

    return gui_main(args.project, smoke=args.smoke)


def shortcut_command(args) -> int:
    from studio import shortcut

    if args.remove:
        removed = shortcut.remove()
        print("\n".join(f"removed {path}" for path in removed) or "There was no launcher to remove.")
        return 0
    if args.if_missing and shortcut.installed():
        return 0
    for path in shortcut.install(desktop=args.desktop):
        print(f"wrote {path}")
    print(f"{shortcut.APP_NAME} is in your applications menu" + (" and on your desktop." if args.desktop else "."))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ftstudio", description="Fine-Tune Studio: fine-tune a language model "
                                     "on your own GPU and export a GGUF. With no command, opens the app.")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("gui", help="open the desktop app (the default)")
    p.add_argument("project", nargs="?", help="a *.ftproj.toml to open")
    p.add_argument("--smoke", action="store_true", help="print when the window is shown, then quit (install checks)")
    p.set_defaults(func=gui_command)

    p = sub.add_parser("setup", help="prepare the embedded model and the GGUF converter (once, after install)")
    p.set_defaults(func=setup_command)

    p = sub.add_parser("new", help="write a new project file with the defaults")
    p.add_argument("path")
    p.add_argument("--data", help="the training data file")
    p.add_argument("--model", help="base model: a folder, a Hub id, or embedded:SmolLM2-135M-Instruct")
    p.add_argument("--method", help="full, lora, qlora, lora8bit or dora (default lora)")
    p.add_argument("--preset", help="start from a preset, as on the Method page: 'Quick test', 'Balanced', 'Max quality'")
    p.add_argument("--force", action="store_true", help="replace an existing project file")
    p.set_defaults(func=new_command)

    p = sub.add_parser("demo", help="train the embedded model on the sample data and export GGUFs, end to end")
    p.add_argument("--steps", type=int, default=20, help="optimizer steps to train (default 20)")
    p.add_argument("--out", default="demo-out", help="folder for the demo project and its run")
    p.set_defaults(func=demo_command)

    p = sub.add_parser("train", help="train a project (or resume a run folder with --resume)")
    p.add_argument("target", help="a *.ftproj.toml, or a run folder")
    p.add_argument("--resume", action="store_true", help="continue a run folder from its last checkpoint")
    p.add_argument("--steps", type=int, default=0, help="override the number of optimizer steps")
    p.set_defaults(func=train_command)

    p = sub.add_parser("merge", help="merge a run's adapter into the 16-bit base model")
    p.add_argument("run_dir")
    p.set_defaults(func=merge_command)

    p = sub.add_parser("export", help="export a run to GGUF files, check them, write an Ollama Modelfile")
    p.add_argument("run_dir")
    p.add_argument("--quant", help="comma-separated types, e.g. f16,q8_0,q4_k_m (default: the project's)")
    p.add_argument("--out", help="output folder (default: the project's, else the run's export/)")
    p.add_argument("--ollama", action="store_true", help="register the model with `ollama create`")
    p.add_argument("--lmstudio", action="store_true", help="place the files in LM Studio's models folder")
    p.add_argument("--adapter", action="store_true",
                   help="export the LoRA adapter as a llama.cpp adapter GGUF (alone unless --quant is given)")
    p.add_argument("--overwrite", action="store_true", help="replace files an earlier export left there")
    p.add_argument("--no-check", action="store_true", help="skip the parity check against the merged model")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=export_command)

    p = sub.add_parser("chat", help="answer a prompt with a GGUF model in llama.cpp")
    p.add_argument("gguf")
    p.add_argument("--prompt", required=True)
    p.add_argument("--max-tokens", type=int, default=200)
    p.set_defaults(func=chat_command)

    p = sub.add_parser("shortcut", help="put the app in your applications menu (and on the desktop)")
    p.add_argument("--desktop", action="store_true", help="also put a launcher on the desktop")
    p.add_argument("--remove", action="store_true", help="take the launchers away again")
    p.add_argument("--if-missing", action="store_true", help=argparse.SUPPRESS)  # run.sh: only the first time
    p.set_defaults(func=shortcut_command)

    register_data(sub)
    register_plan(sub)
    register_evaluate(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["gui"])
    started = time.time()
    try:
        code = args.func(args)
    except StudioError as exc:
        sys.stderr.write(f"\nError: {exc}\n")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        sys.stderr.write("\nCancelled.\n")
        return 130
    if os.environ.get("FTSTUDIO_TIMING"):
        sys.stderr.write(f"[{args.command} took {time.time() - started:.1f}s]\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
