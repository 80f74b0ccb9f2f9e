"""Keeping the computer awake while it trains: a laptop that sleeps an hour into a run loses the hour.

Each platform's own inhibit call, held only while the block runs and given back when it ends (and by the
operating system if the process dies):
- Linux: `systemd-inhibit` (systemd-logind's sleep and idle lock) as a child process, holding the lock for as
  long as this process lives; no D-Bus library needed.
- macOS: `caffeinate -i -w PID`, which ends by itself with this process.
- Windows: SetThreadExecutionState(ES_CONTINUOUS | ES_SYSTEM_REQUIRED) on the calling thread.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Iterator

APP = "Fine-Tune Studio"
ES_CONTINUOUS, ES_SYSTEM_REQUIRED = 0x80000000, 0x00000001
START_WAIT_S = 0.5  # a helper that cannot take the lock (no session bus, no logind) exits within this


def inhibit_command(why: str, pid: int) -> list[str] | None:
    """The child process that holds the lock while `pid` lives, or None where the platform has none."""
    if sys.platform.startswith("linux"):
        inhibit, tail = shutil.which("systemd-inhibit"), shutil.which("tail")
        if inhibit and tail:
            return [inhibit, "--what=sleep:idle", f"--who={APP}", f"--why={why}", "--mode=block",
                    tail, f"--pid={pid}", "-f", os.devnull]
    elif sys.platform == "darwin":
        caffeinate = shutil.which("caffeinate")
        if caffeinate:
            return [caffeinate, "-i", "-w", str(pid)]
    return None


@contextmanager
def keep_awake(why: str) -> Iterator[str]:
    """Stop the computer from sleeping inside the block; yields one sentence saying how, or why not."""
    if os.name == "nt":
        import ctypes

        set_state = ctypes.windll.kernel32.SetThreadExecutionState
        ok = set_state(ES_CONTINUOUS | ES_SYSTEM_REQUIRED) != 0
        try:
            yield "The computer is kept awake while it trains." if ok else \
                "Could not stop the computer from sleeping; set its power plan to stay awake while it trains."
        finally:
            set_state(ES_CONTINUOUS)
        return
    command = inhibit_command(why, os.getpid())
    if command is None:
        yield ("Could not stop the computer from sleeping (no systemd-inhibit or caffeinate here); keep it awake "
               "while it trains.")
        return
    helper = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    time.sleep(START_WAIT_S)
    if helper.poll() is not None:
        why_not = (helper.stderr.read() if helper.stderr else "").strip().splitlines()[-1:] or ["no reason given"]
        yield (f"Could not stop the computer from sleeping ({os.path.basename(command[0])}: {why_not[0]}); keep "
               "it awake while it trains.")
        return
    try:
        yield f"The computer is kept awake while it trains ({os.path.basename(command[0])})."
    finally:
        helper.terminate()
        try:
            helper.wait(timeout=5)
        except subprocess.TimeoutExpired:
            helper.kill()
            helper.wait()
