"""Background work for the GUI: run a `studio` function on a QThread, relay its progress, let it be cancelled.

Every core stage takes `progress(message, fraction)` and a `cancelled()` callable, so one small class runs
them all; the GUI thread only ever receives signals."""
from __future__ import annotations

import threading
import traceback
from typing import Any, Callable

from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal

from studio.errors import Cancelled, StudioError


class Task(QObject):
    """`work(progress, cancelled)` runs on its own thread. Connect the signals, then call start()."""

    progress = Signal(str, float)
    succeeded = Signal(object)
    failed = Signal(str)      # a plain sentence for the user
    cancelled_ = Signal()
    finished = Signal()       # after exactly one of succeeded / failed / cancelled_

    def __init__(self, work: Callable[[Callable[[str, float], None], Callable[[], bool]], Any], parent=None,
                 needs_ml: bool = False):
        super().__init__(parent)
        self._work = work
        self._needs_ml = needs_ml  # the work imports transformers/torch: see import_ml_libraries
        self._cancel = threading.Event()
        self._thread = _Thread(self._run)
        self._thread.finished.connect(self.finished)

    def start(self) -> None:
        # Held here until finished: a QThread destroyed while running aborts the whole process, and a page
        # may drop its reference to a task it no longer cares about.
        _RUNNING.add(self)
        self._thread.finished.connect(self._forget)  # a bound slot: runs on the GUI thread, queued
        app = QCoreApplication.instance()
        if app is not None and not app.property("tasks_hooked"):
            app.setProperty("tasks_hooked", True)
            app.aboutToQuit.connect(stop_all)
        self._thread.start()

    def cancel(self) -> None:
        self._cancel.set()

    def is_running(self) -> bool:
        return self._thread.isRunning()

    def wait(self, ms: int = 30_000) -> bool:
        return self._thread.wait(ms)

    def _forget(self) -> None:
        self._thread.wait()  # `finished` comes just before the thread truly ends
        _RUNNING.discard(self)

    def _run(self) -> None:
        try:
            if self._needs_ml:
                import_ml_libraries()
            result = self._work(lambda message, fraction: self.progress.emit(message, float(fraction)),
                                self._cancel.is_set)
        except Cancelled:
            self.cancelled_.emit()
        except StudioError as error:
            self.failed.emit(str(error))
        except MemoryError:
            self.failed.emit("This computer ran out of memory. Close other programs or pick a smaller model.")
        except Exception as error:  # noqa: BLE001 - the GUI must survive anything a library throws
            traceback.print_exc()
            self.failed.emit(f"Something went wrong: {error}")
        else:
            if self._cancel.is_set():
                self.cancelled_.emit()
            else:
                self.succeeded.emit(result)


_RUNNING: set[Task] = set()
_ML_IMPORT = threading.Lock()


def import_ml_libraries() -> None:
    """Import transformers (and so torch) fully, one thread at a time. Its lazy module is not safe to import
    from two threads at once: two pages' tasks starting together raised "cannot import name 'AutoTokenizer'"."""
    with _ML_IMPORT:
        import transformers

        transformers.AutoTokenizer  # noqa: B018 - resolves the lazy attributes the tasks use
        transformers.AutoModelForCausalLM  # noqa: B018


def stop_all(ms: int = 30_000) -> None:
    """Cancel every running task and wait for it (on quit), so no thread outlives the application."""
    for task in list(_RUNNING):
        task.cancel()
    for task in list(_RUNNING):
        task.wait(ms)


class _Thread(QThread):
    def __init__(self, body: Callable[[], None]):
        super().__init__()
        self._body = body

    def run(self) -> None:  # noqa: D401 - Qt's name
        self._body()
