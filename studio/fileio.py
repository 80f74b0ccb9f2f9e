"""Writing files so that nothing half-written ever sits under a final name, and no two processes write one.

Staging names carry the writing process's id and a random part, so two processes writing the same final
file (two trainings tokenizing the same new data, say) never share a half-written file; the last complete
one wins the rename. `exclusive` is the lock for work that must not run twice at once (exporting one run),
and `disk_full_message` the one sentence for a disk that filled up while writing.
"""
from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from studio.errors import StudioError

PARTIAL = ".partial"


def ensure_writable_dir(folder: Path) -> Path:
    """Create `folder` if needed and prove we can write there, or raise one clear sentence."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=folder, prefix=".ftstudio-probe-", delete=True)
        probe.close()
    except OSError as exc:
        raise StudioError(f"Cannot write to the folder {folder} ({exc.strerror or exc}). "
                          "Choose another output folder or fix its permissions.") from None
    return folder


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    ensure_writable_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        # mkstemp makes the file owner-only; a project file or Modelfile should get the usual permissions.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def staging_name(path: Path) -> Path:
    """A hidden name beside `path` that no other process (or call) uses: .NAME.PID-RANDOM.partial."""
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}{PARTIAL}")


def stale_partials(path: Path) -> list[Path]:
    """Staging files or folders for `path` whose writer is gone (a process killed mid-write leaves them);
    the writer's process id is in the name, so one still writing is never listed."""
    found = []
    for candidate in Path(path).parent.glob(f".{Path(path).name}.*{PARTIAL}"):
        owner = candidate.name[len(Path(path).name) + 2:-len(PARTIAL)].split("-")[0]
        if not owner.isdigit() or not process_alive(int(owner)):
            found.append(candidate)
    return found


def sweep_partials(path: Path) -> list[Path]:
    """Remove what stale_partials finds; returns what was removed."""
    removed = stale_partials(path)
    for leftover in removed:
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
    return removed


def process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name == "nt":
        import ctypes

        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        ctypes.windll.kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        ctypes.windll.kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    return True


@contextmanager
def staged_file(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed to `path`, on failure removed."""
    path = Path(path)
    ensure_writable_dir(path.parent)
    tmp = staging_name(path)
    try:
        yield tmp
        if not tmp.exists():
            raise StudioError(f"Nothing was written for {path.name}.")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def staged_dir(path: Path) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; on success it replaces `path`, on failure it is removed."""
    path = Path(path)
    ensure_writable_dir(path.parent)
    tmp = staging_name(path)
    tmp.mkdir()
    try:
        yield tmp
        old = None
        if path.exists():  # moved aside first: a folder cannot be renamed over a full one
            old = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.old")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class Busy(StudioError):
    """Another window or command is doing the same work on the same files."""


@contextmanager
def exclusive(target: Path, purpose: str, busy_message: str = "") -> Iterator[None]:
    """Hold the lock for `purpose` ("train", "export"...) on `target` for the duration of the block, or raise
    Busy(busy_message) at once if another process holds it. The lock file lives in the app's cache folder,
    never beside the user's files; the operating system releases the lock when its process ends, however it
    ends."""
    from filelock import FileLock, Timeout

    from studio import paths

    key = hashlib.sha256(f"{Path(target).resolve()}\0{purpose}".encode()).hexdigest()[:24]
    folder = paths.home() / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / f"{key}.lock"), timeout=0, is_singleton=False)
    try:
        lock.acquire()
    except Timeout:
        raise Busy(busy_message) from None
    try:
        yield
    finally:
        lock.release()


def is_locked(target: Path, purpose: str) -> bool:
    """Whether some process holds `exclusive(target, purpose)` right now."""
    try:
        with exclusive(target, purpose):
            return False
    except Busy:
        return True


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def disk_full_message(folder: Path, writing: str, need_bytes: int | None = None) -> str:
    """One sentence for a disk that filled up while writing: where, what, and how much to free."""
    folder = Path(folder)
    amount = f"about {max(need_bytes, 10**8) / 1e9:.1f} GB" if need_bytes else "some space"
    return (f"The disk at {folder} filled up while writing {writing}; free {amount} and try again "
            "(the files finished before it are kept).")
