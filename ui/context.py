"""What the pages share: the open project, the GPU, and the run the app is working on.

Pages edit `studio.project` directly and then call `edited()`; they never keep settings of their own, so
what the window shows is always what the project file (and so the CLI) would do."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from studio.project import Project


class Studio(QObject):
    project_edited = Signal()      # a page changed a setting; other pages refresh what depends on it
    project_loaded = Signal()      # New / Open replaced the whole project; pages reload every control
    gpu_detected = Signal(object)  # studio.plan.GpuInfo, found on a background thread after start-up
    run_changed = Signal(object)   # Path of the current run (started, finished, or picked); Test/Export use it
    busy_changed = Signal(bool)    # training or exporting: pages lock what must not change meanwhile
    readiness_changed = Signal()   # a page's ready mark may have changed

    def __init__(self, project: Project):
        super().__init__()
        self.project = project
        self.gpu = None
        self.run_dir: Path | None = None
        self.dirty = False
        self.busy = False

    def edited(self) -> None:
        self.dirty = True
        self.project_edited.emit()
        self.readiness_changed.emit()

    def load(self, project: Project) -> None:
        self.project = project
        self.dirty = False
        self.run_dir = None
        self.project_loaded.emit()
        self.pick_latest_run()
        self.readiness_changed.emit()

    def pick_latest_run(self) -> None:
        from studio.train.runs import latest_run

        self.set_run(latest_run(self.project))

    def set_run(self, run_dir: Path | None) -> None:
        self.run_dir = Path(run_dir) if run_dir else None
        self.run_changed.emit(self.run_dir)
        self.readiness_changed.emit()

    def set_busy(self, busy: bool) -> None:
        self.busy = busy
        self.busy_changed.emit(busy)

    def apply_changes(self, changes: dict) -> str:
        """Write a fix or advice ({"section.key": value}) into the project, all or nothing (studio.presets), and
        have every page reload its controls; returns the changes in words. Raises ProjectError for a bad value."""
        from studio.presets import apply_changes

        apply_changes(self.project, changes)
        self.edited()
        self.project_loaded.emit()
        return ", ".join(f"{key} = {value}" for key, value in changes.items())
