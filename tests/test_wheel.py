"""The wheel is the whole app: built from the repository, installed non-editable somewhere else, it runs from
there (the CLI on its shipped catalog and sample, the window offscreen) with no help from the source folder.

What the wheel must hold is derived from the repository itself (every module and data file of studio/ and
ui/, every file under resources/ except the scripts that made the samples), so a new resource that the
packaging config would leave out fails here instead of in a user's installed copy.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("studio/", "ui/")  # installed as they are
RESOURCES = "resources/"  # installed as studio/resources/


def repository_files() -> list[str]:
    """The repository's files, relative and with forward slashes: git's list where there is one, since an
    untracked file in a working copy is no part of the app."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
        return [name for name in listed.decode().split("\0") if name and (ROOT / name).is_file()]
    except (OSError, subprocess.CalledProcessError):
        return [p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*")
                if p.is_file() and "__pycache__" not in p.parts and ".git" not in p.parts]


def files_the_wheel_must_hold() -> list[str]:
    wanted = []
    for name in repository_files():
        if name.startswith(PACKAGES):
            wanted.append(name)
        elif name.startswith(RESOURCES) and not name.endswith(".py"):
            wanted.append("studio/resources/" + name.removeprefix(RESOURCES))
    return wanted


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel as CI and a release build it, from a clean copy of the repository (setuptools' build/
    folder would otherwise carry files over from an earlier build)."""
    source = tmp_path_factory.mktemp("source")
    for name in repository_files():
        if name.startswith(("docs/", "bench/", "tests/")):
            continue
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            "-w", str(out), str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    return next(out.glob("fine_tune_studio-*.whl"))


def test_wheel_holds_every_file_the_app_reads(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = files_the_wheel_must_hold()
    assert "studio/resources/catalog.json" in wanted and "studio/resources/icons/app.svg" in wanted
    missing = sorted(set(wanted) - names)
    assert not missing, f"files the app reads at run time are missing from the wheel: {missing}"
    # nothing lands at the top of site-packages but the app's own packages
    tops = {name.split("/", 1)[0] for name in names if "/" in name and ".dist-info/" not in name}
    assert tops == {"studio", "ui"}, tops
    assert not [name for name in names if name.startswith("studio/resources/") and name.endswith(".py")]


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """The wheel installed non-editable into a folder of its own; the test venv supplies the dependencies."""
    target = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile",
                           "--target", str(target), str(wheel)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return target


def run_installed(installed: Path, tmp_path: Path, *args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    """`ftstudio ARGS` from the installed copy, started outside the repository, with the repository off the
    path and the user's folders in tmp_path."""
    from studio.models import EMBEDDED_NAME, embedded_model_dir

    home = tmp_path / "ftstudio-home"
    if not (home / "models" / EMBEDDED_NAME).exists():
        # the embedded model converted once already (it is a cache): the GUI's start-up reads its tokenizer
        (home / "models").mkdir(parents=True)
        (home / "models" / EMBEDDED_NAME).symlink_to(embedded_model_dir(), target_is_directory=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(installed), "FTSTUDIO_HOME": str(home), "HOME": str(tmp_path / "user"),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "QT_QPA_PLATFORM": "offscreen", "HF_HUB_OFFLINE": "1",
           "PYTHONDONTWRITEBYTECODE": "1"}  # as the desktop packages run it: then any file written there is the app's
    script = installed / "bin" / "ftstudio"
    command = [sys.executable, str(script), *args] if script.is_file() else [sys.executable, "-m", "studio.cli", *args]
    return subprocess.run(command, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=timeout)


def test_installed_wheel_finds_its_files_in_the_install(installed, tmp_path):
    # `python -m` would put the working folder on the path; the installed script does not
    probe = "import studio, studio.paths as p; print(studio.__file__); print(p.RESOURCES)"
    env = {**os.environ, "PYTHONPATH": str(installed)}
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True)
    module, resources = done.stdout.split()
    assert Path(module).is_relative_to(installed) and Path(resources) == installed / "studio" / "resources"
    assert not Path(resources).is_relative_to(ROOT)


def test_installed_wheel_runs_the_cli_and_the_window(installed, tmp_path):
    sample = installed / "studio" / "resources" / "samples" / "pirate_chat.jsonl"
    files_before = sorted(installed.rglob("*"))

    plan = run_installed(installed, tmp_path, "plan", "--model", "Qwen/Qwen2.5-7B-Instruct", "--method", "qlora",
                         "--gpu-gb", "24")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "Estimated peak GPU memory" in plan.stdout  # the model's shape came from the installed catalog

    inspect = run_installed(installed, tmp_path, "data", "inspect", str(sample), "--json")
    assert inspect.returncode == 0, inspect.stdout + inspect.stderr
    assert '"format"' in inspect.stdout

    project = tmp_path / "mine.ftproj.toml"
    new = run_installed(installed, tmp_path, "new", str(project), "--data", str(sample), "--preset", "Balanced")
    assert new.returncode == 0, new.stdout + new.stderr  # the presets came from the installed presets.json

    window = run_installed(installed, tmp_path, "gui", "--smoke")
    assert window.returncode == 0, window.stdout + window.stderr
    assert "Window shown:" in window.stdout and "Icons: loaded" in window.stdout
    # the starter project went to the user's projects folder, not into the installed package
    assert f"Project: {tmp_path / 'ftstudio-home' / 'projects'}" in window.stdout
    assert sorted(installed.rglob("*")) == files_before  # nothing written into the installed app
