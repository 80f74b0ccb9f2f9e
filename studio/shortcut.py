"""A launcher for the desktop app in the system's application menu (and on the desktop), so that after the
one-time setup a user opens Fine-Tune Studio like any other program, never from a terminal.

Linux: a freedesktop.org desktop entry in ~/.local/share/applications (the menu of GNOME, KDE, Xfce, ...) and,
when asked, a copy on the desktop. Windows: Start-menu and desktop shortcuts (.lnk), made by PowerShell's
WScript.Shell, that start the console-less `ftstudio-gui.exe` this package installs. macOS machines have no
CUDA GPU to train on, so no launcher is offered there.
"""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from studio import paths
from studio.errors import StudioError
from studio.fileio import atomic_write_text

APP_NAME = "Fine-Tune Studio"
ENTRY_NAME = "fine-tune-studio.desktop"


def launcher_command() -> list[str]:
    """The command that opens the app, by absolute paths: it must work from a menu, with no PATH set up."""
    folder = Path(sys.executable).parent
    for name in ("ftstudio-gui.exe", "ftstudio.exe", "ftstudio") if os.name == "nt" else ("ftstudio",):
        script = folder / name
        if script.is_file():
            return [str(script), "gui"]
    found = shutil.which("ftstudio")
    if found:
        return [str(Path(found).resolve()), "gui"]
    return [sys.executable, "-m", "ui.main", "gui"]  # the installed command's own module


def menu_entry_path() -> Path:
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "applications" / ENTRY_NAME


def desktop_folder() -> Path | None:
    """The user's desktop folder (named in their language on some systems), or None when there is none."""
    try:
        answer = subprocess.run(["xdg-user-dir", "DESKTOP"], capture_output=True, text=True, timeout=5)
        named = Path(answer.stdout.strip()) if answer.returncode == 0 and answer.stdout.strip() else None
    except (OSError, subprocess.TimeoutExpired):
        named = None
    for folder in (named, Path.home() / "Desktop"):
        # xdg-user-dir answers $HOME itself when no desktop folder is configured: never litter the home folder
        if folder is not None and folder.is_dir() and folder.resolve() != Path.home().resolve():
            return folder
    return None


def _exec_quote(arg: str) -> str:
    """Quote one argument of a desktop entry's Exec key (freedesktop.org Desktop Entry spec, 'The Exec key')."""
    if arg and not any(ch in arg for ch in ' \t\n"\'\\><~|&;$*?#()`'):
        return arg
    escaped = "".join("\\" + ch if ch in '"`$\\' else ch for ch in arg)
    return f'"{escaped}"'


def desktop_entry(command: list[str], icon: Path) -> str:
    # %f: a project file dropped on the launcher (or opened with it) is opened in the app
    exec_line = " ".join(_exec_quote(arg).replace("%", "%%") for arg in command) + " %f"
    exec_line = exec_line.replace("\\", "\\\\")  # the file's own string escape comes on top of Exec's quoting
    return "\n".join([
        "[Desktop Entry]",
        "Type=Application",
        "Version=1.0",
        f"Name={APP_NAME}",
        "GenericName=Language model fine-tuning",
        "Comment=Fine-tune a language model on your own GPU and export a GGUF for llama.cpp, Ollama or LM Studio",
        f"Exec={exec_line}",
        f"Icon={icon}",
        "Terminal=false",
        "Categories=Development;Science;",
        "Keywords=LLM;LoRA;QLoRA;GGUF;fine-tuning;llama.cpp;Ollama;",
        "StartupNotify=true",
        "",
    ])


def installed() -> bool:
    """Whether the application-menu launcher is there already."""
    if os.name == "nt":
        return (_windows_folder("Programs") / f"{APP_NAME}.lnk").is_file()
    return menu_entry_path().is_file()


def install(desktop: bool = False) -> list[Path]:
    """Put the app in the application menu (and on the desktop when asked); returns what was written."""
    if sys.platform == "darwin":
        raise StudioError("Fine-Tune Studio trains on NVIDIA GPUs, which Macs do not have, so it makes no "
                          "launcher there; start it with `ftstudio`.")
    if os.name == "nt":
        return _install_windows(desktop)
    icon = paths.RESOURCES / "icons" / "app.svg"
    text = desktop_entry(launcher_command(), icon)
    written = [menu_entry_path()]
    if desktop:
        folder = desktop_folder()
        if folder is None:
            raise StudioError("There is no desktop folder to put the launcher in; it is in the application "
                              f"menu ({menu_entry_path()}).")
        written.append(folder / ENTRY_NAME)
    for path in written:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
        # desktops run a launcher only when it is executable (and, on GNOME, marked trusted below)
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    if desktop and shutil.which("gio"):
        subprocess.run(["gio", "set", str(written[-1]), "metadata::trusted", "true"], capture_output=True,
                       timeout=10, check=False)
    return written


def remove() -> list[Path]:
    """Take the launchers away again; returns what was removed."""
    if os.name == "nt":
        candidates = [_windows_folder(name) / f"{APP_NAME}.lnk" for name in ("Programs", "Desktop")]
    else:
        folder = desktop_folder()
        candidates = [menu_entry_path()] + ([folder / ENTRY_NAME] if folder else [])
    removed = []
    for path in candidates:
        if path.is_file():
            path.unlink()
            removed.append(path)
    return removed


# --- Windows ---------------------------------------------------------------------------------------------

def _windows_folder(name: str) -> Path:
    """Start-menu Programs or Desktop of this user, as Windows names them (they can be redirected)."""
    answer = subprocess.run(["powershell", "-NoProfile", "-Command", f"[Environment]::GetFolderPath('{name}')"],
                            capture_output=True, text=True, timeout=30)
    if answer.returncode != 0 or not answer.stdout.strip():
        raise StudioError(f"Windows did not say where your {name} folder is: {answer.stderr.strip()}")
    return Path(answer.stdout.strip())


def _install_windows(desktop: bool) -> list[Path]:
    command = launcher_command()
    icon = paths.RESOURCES / "icons" / "app.ico"
    written = []
    for name in ("Programs",) + (("Desktop",) if desktop else ()):
        link = _windows_folder(name) / f"{APP_NAME}.lnk"

        def ps(text) -> str:  # a PowerShell single-quoted string
            return "'" + str(text).replace("'", "''") + "'"
        script = "; ".join([
            f"$s = (New-Object -ComObject WScript.Shell).CreateShortcut({ps(link)})",
            f"$s.TargetPath = {ps(command[0])}",
            f"$s.Arguments = {ps(subprocess.list2cmdline(command[1:]))}",
            f"$s.IconLocation = {ps(icon)}",
            f"$s.WorkingDirectory = {ps(Path.home())}",
            f"$s.Description = {ps('Fine-tune a language model on your own GPU')}",
            "$s.Save()",
        ])
        answer = subprocess.run(["powershell", "-NoProfile", "-Command", script], capture_output=True, text=True,
                                timeout=60)
        if answer.returncode != 0:
            raise StudioError(f"Windows could not make the shortcut {link}: {answer.stderr.strip()}")
        written.append(link)
    return written
