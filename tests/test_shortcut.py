"""The application-menu launcher: written where desktops look, valid, and it really opens the app."""
import configparser
import json
import os
import subprocess
import sys
import time

import pytest

from studio import shortcut

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="freedesktop launchers are Linux's")


@pytest.fixture
def user_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "Desktop").mkdir(parents=True)
    env = {"HOME": str(home), "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "FTSTUDIO_HOME": str(tmp_path / "ftstudio")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return {**os.environ, **env}


def _cli(env, *args):
    return subprocess.run([sys.executable, "-m", "studio.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def _read_entry(path):
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keys are case-sensitive in desktop entries
    parser.read(path, encoding="utf-8")
    return parser["Desktop Entry"]


def _exec_args(entry, file_arg):
    """Split the Exec key as the Desktop Entry spec says: the file's string escapes first, then arguments
    split at spaces, where a double-quoted one may escape " ` $ and \\ with a backslash; then %f."""
    line = entry["Exec"].replace("\\\\", "\\")
    args, current, quoted, i = [], None, False, 0
    while i < len(line):
        ch = line[i]
        if quoted and ch == "\\" and line[i + 1] in '"`$\\':
            current, i = current + line[i + 1], i + 2
            continue
        if ch == '"':
            quoted, current = not quoted, current or ""
        elif ch == " " and not quoted:
            if current is not None:
                args.append(current)
            current = None
        else:
            current = (current or "") + ch
        i += 1
    if current is not None:
        args.append(current)
    return [file_arg if arg == "%f" else arg.replace("%%", "%") for arg in args]


def test_launcher_in_the_menu_opens_the_app_with_a_project(user_home, tmp_path):
    done = _cli(user_home, "shortcut", "--desktop")
    assert done.returncode == 0, done.stderr
    menu = tmp_path / "data" / "applications" / "fine-tune-studio.desktop"
    on_desktop = tmp_path / "home" / "Desktop" / "fine-tune-studio.desktop"
    assert menu.is_file() and on_desktop.is_file()
    assert menu.read_text() == on_desktop.read_text()
    assert os.access(on_desktop, os.X_OK)  # desktops refuse to run a launcher that is not executable
    entry = _read_entry(menu)
    assert entry["Type"] == "Application" and entry["Name"] == "Fine-Tune Studio"
    assert entry["Terminal"] == "false"
    assert os.path.isfile(entry["Icon"])
    project = tmp_path / "My Projects" / "pirate.ftproj.toml"
    assert _cli(user_home, "new", str(project)).returncode == 0

    # Start it the way the menu would, with a project handed over (%f), on an offscreen screen.
    env = {**user_home, "QT_QPA_PLATFORM": "offscreen", "HF_HUB_OFFLINE": "1"}
    app = subprocess.Popen(_exec_args(entry, str(project)), env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    recent = tmp_path / "ftstudio" / "recent_projects.json"
    try:
        deadline = time.time() + 90
        while time.time() < deadline and app.poll() is None and not recent.is_file():
            time.sleep(0.2)
        assert recent.is_file(), app.stdout.read() if app.poll() is not None else "the app never opened the project"
        assert json.loads(recent.read_text())[0] == str(project.resolve())
        time.sleep(2)
        assert app.poll() is None, app.stdout.read()  # the window is up and running, not crashed
    finally:
        app.terminate()
        app.wait(timeout=30)


def test_remove_takes_both_launchers_away(user_home, tmp_path):
    assert _cli(user_home, "shortcut", "--desktop").returncode == 0
    menu = tmp_path / "data" / "applications" / "fine-tune-studio.desktop"
    menu.write_text(menu.read_text() + "# kept\n")
    assert _cli(user_home, "shortcut", "--if-missing").returncode == 0
    assert menu.read_text().endswith("# kept\n")  # --if-missing (run.sh) leaves an existing launcher alone
    removed = _cli(user_home, "shortcut", "--remove")
    assert removed.returncode == 0 and removed.stdout.count("removed") == 2
    assert not menu.exists() and not (tmp_path / "home" / "Desktop" / "fine-tune-studio.desktop").exists()
    assert "no launcher" in _cli(user_home, "shortcut", "--remove").stdout


def test_no_desktop_folder_is_said_plainly(user_home, tmp_path):
    (tmp_path / "home" / "Desktop").rmdir()
    done = _cli(user_home, "shortcut", "--desktop")
    assert done.returncode != 0
    assert "no desktop folder" in done.stderr
    assert not list((tmp_path / "home").iterdir())  # nothing left in the home folder instead


def test_exec_quoting_survives_spaces_and_shell_characters():
    command = ["/opt/My Apps/$HOME's \"tools\"/ftstudio", "gui"]
    entry = shortcut.desktop_entry(command, shortcut.paths.RESOURCES / "icons" / "app.svg")
    line = next(ln for ln in entry.splitlines() if ln.startswith("Exec="))
    assert _exec_args({"Exec": line[len("Exec="):]}, "/tmp/a b.ftproj.toml") == command + ["/tmp/a b.ftproj.toml"]


def test_help_menu_adds_the_launcher(qtbot, user_home, tmp_path, sample_data, tiny_model_dir):
    pytest.importorskip("pytestqt")
    from studio.project import Project
    from ui.app import MainWindow
    from ui.pages.data import DataPage

    project = Project(name="launcher")
    project.model.name, project.data.train_file = str(tiny_model_dir), str(sample_data)
    window = MainWindow(project)
    window.show()
    action = next(a for a in window.menuBar().actions() if a.text() == "&Help").menu().actions()[0]
    assert "applications" in action.text()
    shown = []  # every status message: the start-up GPU check may replace this one soon after
    window.statusBar().messageChanged.connect(shown.append)
    action.trigger()
    qtbot.waitUntil(lambda: any("applications menu" in message for message in shown), timeout=30_000)
    assert (tmp_path / "data" / "applications" / "fine-tune-studio.desktop").is_file()
    assert (tmp_path / "home" / "Desktop" / "fine-tune-studio.desktop").is_file()
    data = window.page(DataPage)
    qtbot.waitUntil(lambda: data.task is None, timeout=120_000)  # its start-up inspection, before closing
    window.studio.dirty = False
    window.close()
