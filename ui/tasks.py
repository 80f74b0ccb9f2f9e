"""The one way the window runs core work: a `studio` function on its own thread, its progress, its outcome.

Every core stage takes `progress(message, fraction)` and a `cancelled()` callable (studio.progress), so one
small class runs them all, as Anki's QueryOp runs its collection work; the GUI thread only ever receives
signals. What the window gets by default: a failure is shown (in the main window's status bar) unless the page
shows it itself; a cancel carries the core's own sentence (what was kept); a task that a newer one replaced
(`Latest`) never calls back, so a stale result cannot overwrite a fresh one.
"""
from __future__ import annotations

import threading
import traceback
from typing import Any, Callable, Iterable

from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal

from studio.errors import Cancelled, StudioError
from studio.progress import Cancel, Progress

Work = Callable[[Progress, Cancel], Any]
CANCELLED = "Cancelled."  # when the work stopped without saying what it kept


class Notices(QObject):
    """Failures nobody else showed; the main window puts them in its status bar."""

    failure = Signal(str)


NOTICES = Notices()


def show_failure(message: str) -> None:
    NOTICES.failure.emit(message)


class Task(QObject):
    """`work(progress, cancelled)` runs on its own thread; its outcome comes back as callbacks on the GUI thread:

    on_success(result); on_progress(message, fraction); on_item(element) for each element the work's iterator
    yields when stream=True (the iterator is read on the thread: an answer's pieces, a worker's events);
    on_failure(sentence), shown in the status bar unless given; on_cancel(sentence); on_finish() after any of
    them. Call start(); cancel() asks the work to stop at its next check; drop() also silences it."""

    progress = Signal(str, float)
    item = Signal(object)
    succeeded = Signal(object)
    failed = Signal(str)  # a plain sentence for the user
    cancelled_ = Signal(str)  # the core's sentence: what was stopped and what was kept
    finished = Signal()  # after exactly one of succeeded / failed / cancelled_

    def __init__(self, work: Work, parent=None, *, needs_ml: bool = False, stream: bool = False,
                 on_success: Callable[[Any], None] | None = None, on_progress: Progress | None = None,
                 on_item: Callable[[Any], None] | None = None,
                 on_failure: Callable[[str], None] | None = show_failure,
                 on_cancel: Callable[[str], None] | None = None, on_finish: Callable[[], None] | None = None):
        super().__init__(parent)
        self._work = work
        self._needs_ml = needs_ml  # the work imports transformers/torch: see import_ml_libraries
        self._stream = stream
        self._cancel = threading.Event()
        self.dropped = False
        self.settled = False  # its outcome (success, failure or cancel) has reached the GUI thread
        self._thread = _Thread(self._run)
        self._thread.finished.connect(self._ended)  # a bound slot: runs on the GUI thread, queued
        for signal in (self.succeeded, self.failed, self.cancelled_):
            signal.connect(self._settle)  # first, so the callbacks below already see it settled
        for signal, callback in ((self.succeeded, on_success), (self.progress, on_progress), (self.item, on_item),
                                 (self.failed, on_failure), (self.cancelled_, on_cancel)):
            if callback is not None:
                signal.connect(self._unless_dropped(callback))
        self._on_finish = on_finish

    def start(self) -> Task:
        # Held here until finished: a QThread destroyed while running aborts the whole process, and a page
        # may drop its reference to a task it no longer cares about.
        _RUNNING.add(self)
        # And its owner (the window it belongs to) is held too: a window Python let go of, or deleted, while
        # one of its tasks runs would destroy the task's thread with it and end the process.
        owner = self.parent()
        while owner is not None and owner.parent() is not None:
            owner = owner.parent()
        self._owner = owner
        app = QCoreApplication.instance()
        if app is not None and not app.property("tasks_hooked"):
            app.setProperty("tasks_hooked", True)
            app.aboutToQuit.connect(stop_all)
        self._thread.start()
        return self

    def cancel(self) -> None:
        self._cancel.set()

    def drop(self) -> None:
        """Cancel, and call nothing back: a newer task has taken this one's place."""
        self.dropped = True
        self.cancel()

    def is_running(self) -> bool:
        return self._thread.isRunning()

    def wait(self, ms: int = 30_000) -> bool:
        return self._thread.wait(ms)

    def _settle(self, *outcome) -> None:
        self.settled = True

    def _unless_dropped(self, callback):
        def relay(*args):
            if not self.dropped:
                callback(*args)
        return relay

    def _ended(self) -> None:
        self._thread.wait()  # `finished` comes just before the thread truly ends
        _RUNNING.discard(self)
        self._owner = None
        self.finished.emit()
        if self._on_finish is not None and not self.dropped:
            self._on_finish()

    def _run(self) -> None:
        try:
            if self._needs_ml:
                import_ml_libraries()
            result = self._work(lambda message, fraction: self.progress.emit(message, float(fraction)),
                                self._cancel.is_set)
            if self._stream:
                result = self._read(result)
        except Cancelled as stop:
            self.cancelled_.emit(str(stop) or CANCELLED)
        except StudioError as error:
            self.failed.emit(str(error))
        except MemoryError:
            self.failed.emit("This computer ran out of memory. Close other programs or pick a smaller model.")
        except Exception as error:  # noqa: BLE001 - the GUI must survive anything a library throws
            traceback.print_exc()
            self.failed.emit(f"Something went wrong: {error}")
        else:
            if self._cancel.is_set():
                self.cancelled_.emit(CANCELLED)
            else:
                self.succeeded.emit(result)

    def _read(self, elements: Iterable) -> None:
        """Hand each element to the GUI thread; stop reading (and close a generator) when cancelled."""
        try:
            for element in elements:
                if self._cancel.is_set():
                    break
                self.item.emit(element)
        finally:
            close = getattr(elements, "close", None)
            if close is not None:
                close()


class Latest(QObject):
    """One purpose, one task at a time (reading a file, checking an export): starting a task drops the one
    before it, whose result would be stale. `current` is the task still wanted, None once its outcome came."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._current: Task | None = None
        self._alive: set[Task] = set()  # dropped ones too, until they end: waited for on close

    @property
    def current(self) -> Task | None:
        return self._current if self._current is not None and not self._current.settled else None

    def start(self, task: Task) -> Task:
        self.drop()
        self._current = task
        self._alive.add(task)
        task.finished.connect(lambda: self._alive.discard(task))
        return task.start()

    def drop(self) -> None:
        if self._current is not None:
            self._current.drop()
        self._current = None

    def cancel(self) -> None:
        """Ask the current task to stop; it still calls back (with its cancel sentence)."""
        if self._current is not None:
            self._current.cancel()

    @property
    def alive(self) -> bool:
        """Whether any of its tasks, dropped ones included, still runs."""
        return bool(self._alive)

    def wait(self, ms: int = 30_000) -> None:
        for task in list(self._alive):
            task.wait(ms)


_RUNNING: set[Task] = set()
_ML_IMPORT = threading.Lock()


def import_ml_libraries() -> None:
    """Import transformers (and so torch) fully, one thread at a time. Its lazy module is not safe to import
    from two threads at once: two pages' tasks starting together raised "cannot import name 'AutoTokenizer'"."""
    with _ML_IMPORT:
        import transformers

        transformers.AutoTokenizer  # noqa: B018 - resolves the lazy attributes the tasks use
        transformers.AutoModelForCausalLM  # noqa: B018


def running_tasks(owner: QObject | None = None) -> list[Task]:
    """The tasks still running, all of them or those `owner` (a window, a page) holds among its children."""
    def owned(task: Task) -> bool:
        parent = task.parent()
        while parent is not None and parent is not owner:
            parent = parent.parent()
        return parent is owner

    return [task for task in list(_RUNNING) if task.is_running() and (owner is None or owned(task))]


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
