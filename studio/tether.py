"""Child processes that end when the app ends, however it ends (a crash or `kill -9` included).

A converter or quantizer left running after its parent died would finish a hidden file of gigabytes nobody
will use. `tethered_popen` starts a child so that this cannot happen:
- Linux: the command is started through this file run as a script, which asks the kernel to kill it when
  its parent dies (prctl PR_SET_PDEATHSIG) and then becomes the command (exec keeps that setting);
- other POSIX systems (macOS): the same script starts the command and ends it once its parent is gone;
- Windows: the child joins a job object that kills its processes when the app's handle to it closes.

Run as a script: `python tether.py PARENT_PID COMMAND...` (standard library only, so any Python runs it).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

PR_SET_PDEATHSIG = 1
_job = None  # Windows: the job object every tethered child joins, held open for the app's lifetime


def tethered_popen(command: list[str], **kwargs) -> subprocess.Popen:
    """subprocess.Popen(command, **kwargs), but the child dies with this process."""
    if os.name == "nt":
        process = subprocess.Popen(command, **kwargs)
        _join_kill_on_close_job(process)
        return process
    python = kwargs.pop("python", None) or sys.executable
    # -I: the script's own folder (studio/) must not shadow a standard module
    return subprocess.Popen([python, "-I", os.path.abspath(__file__), str(os.getpid()), *command], **kwargs)


def _join_kill_on_close_job(process: subprocess.Popen) -> None:
    """Windows: put the child in a job whose processes the system kills when the last handle to the job
    closes, which happens when this process ends. Not tested on Windows yet."""
    global _job
    import ctypes
    from ctypes import wintypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    if _job is None:
        class Limits(ctypes.Structure):
            _fields_ = [("PerProcessUserTimeLimit", ctypes.c_int64), ("PerJobUserTimeLimit", ctypes.c_int64),
                        ("LimitFlags", wintypes.DWORD), ("MinimumWorkingSetSize", ctypes.c_size_t),
                        ("MaximumWorkingSetSize", ctypes.c_size_t), ("ActiveProcessLimit", wintypes.DWORD),
                        ("Affinity", ctypes.c_size_t), ("PriorityClass", wintypes.DWORD),
                        ("SchedulingClass", wintypes.DWORD)]

        class Counters(ctypes.Structure):
            _fields_ = [(name, ctypes.c_uint64) for name in ("ReadOps", "WriteOps", "OtherOps", "ReadBytes",
                                                              "WriteBytes", "OtherBytes")]

        class ExtendedLimits(ctypes.Structure):
            _fields_ = [("BasicLimitInformation", Limits), ("IoInfo", Counters),
                        ("ProcessMemoryLimit", ctypes.c_size_t), ("JobMemoryLimit", ctypes.c_size_t),
                        ("PeakProcessMemoryUsed", ctypes.c_size_t), ("PeakJobMemoryUsed", ctypes.c_size_t)]

        job = kernel32.CreateJobObjectW(None, None)
        info = ExtendedLimits()
        info.BasicLimitInformation.LimitFlags = 0x2000  # JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
        kernel32.SetInformationJobObject(job, 9, ctypes.byref(info), ctypes.sizeof(info))  # extended limits
        _job = job
    kernel32.AssignProcessToJobObject(_job, wintypes.HANDLE(int(process._handle)))


def _run(parent: int, command: list[str]) -> int:
    """The script's side: tie this process to `parent`, then run `command` in its place."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the line above took effect
            return 1
        os.execvp(command[0], command)
    child = subprocess.Popen(command)
    while child.poll() is None:
        if os.getppid() != parent:
            child.kill()
            child.wait()
            return 1
        time.sleep(0.5)
    return child.returncode


if __name__ == "__main__":
    sys.exit(_run(int(sys.argv[1]), sys.argv[2:]))
