"""What the pages share, as one evented model (like napari's EventedModel): the open project, the memory plan
for it, the GPU, and the run the app is working on.

A page never sets a project attribute itself: it calls `apply({"train.batch_size": 8})`, which validates the
change through the project's own rules (studio.presets.apply_changes: all or nothing, a ProjectError naming
the value otherwise) and announces the keys that changed. So what the window shows is always what the project
file (and so the CLI) would do, and the estimate is computed once per change for every page that shows it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from studio.errors import StudioError
from studio.plan import Estimate, GpuInfo, Verdict
from studio.project import Project
from ui import view_mode
from ui.widgets import plan_gpu

EVERYTHING = frozenset({"*"})  # the keys of a `changed` that replaced the whole project (New / Open)


def touches(keys: frozenset, *prefixes: str) -> bool:
    """Whether a change concerns any of these settings: touches(keys, "method.", "train.max_seq_len")."""
    return keys is EVERYTHING or any(key.startswith(prefixes) for key in keys)


@dataclass(frozen=True)
class Plan:
    """The planner's answer for the project's model and settings on the GPU planned for."""
    gpu: GpuInfo
    config: dict | None = None  # the model's config.json; None when nothing on this computer describes it
    estimate: Estimate | None = None
    verdict: Verdict | None = None
    problem: str = ""  # why there is no estimate, when the model or a setting cannot be sized


class Studio(QObject):
    changed = Signal(object)  # frozenset of the keys changed ("train.batch_size"), EVERYTHING on New / Open
    plan_changed = Signal()  # `plan` was recomputed: the model, a method or training setting, or the GPU changed
    dirty_changed = Signal(bool)  # the project differs from its file (or is saved again)
    gpu_detected = Signal(object)  # studio.plan.GpuInfo, found on a background thread after start-up
    run_changed = Signal(object)  # Path of the current run (started, finished, or picked); Test/Export use it
    busy_changed = Signal(bool)  # training or exporting: pages lock what must not change meanwhile
    readiness_changed = Signal()  # a page's ready mark may have changed
    view_changed = Signal(bool)  # Simple (False) or Expert (True) view: pages show or hide their expert settings

    def __init__(self, project: Project):
        super().__init__()
        self.project = project
        self.gpu: GpuInfo | None = None
        self.planned_size = plan_gpu.planned_size()  # "detected" or a size in GB: a view preference
        self.plan = Plan(plan_gpu.planning_gpu(None, self.planned_size))
        self._config_for: tuple[str, dict | None, str] | None = None  # (model name, config, problem)
        self.run_dir: Path | None = None
        self.dirty = False
        self.busy = False
        self.expert = view_mode.saved_mode() == view_mode.EXPERT

    # --- the view -------------------------------------------------------------------------------------
    def set_expert(self, expert: bool) -> None:
        """Show every setting with its technical name (True) or the plain Simple view (False)."""
        view_mode.save_mode(view_mode.EXPERT if expert else view_mode.SIMPLE)
        if expert != self.expert:
            self.expert = expert
            self.view_changed.emit(expert)

    # --- the project ----------------------------------------------------------------------------------
    def apply(self, changes: dict) -> str:
        """Change settings keyed like the project file (a control, a fix, a piece of advice); raises
        ProjectError (and changes nothing) when a value is impossible. Returns the changes in words."""
        from studio.presets import apply_changes

        apply_changes(self.project, changes)
        self._changed(frozenset(changes))
        return ", ".join(f"{key} = {value}" for key, value in changes.items())

    def load(self, project: Project) -> None:
        """Show another project (New / Open): every page reloads, the latest run is picked."""
        self.project = project
        self._config_for = None
        self.run_dir = None
        self.set_dirty(False)
        self._changed(EVERYTHING, dirty=False)
        self.pick_latest_run()

    def save(self, path: Path | None = None) -> Path:
        from studio.project import save_project

        saved = save_project(self.project, path)
        self.set_dirty(False)
        return saved

    def set_dirty(self, dirty: bool) -> None:
        if dirty != self.dirty:
            self.dirty = dirty
            self.dirty_changed.emit(dirty)

    def _changed(self, keys: frozenset, dirty: bool = True) -> None:
        if dirty:
            self.set_dirty(True)
        if touches(keys, "model.", "method.", "train."):
            self.update_plan()
        self.changed.emit(keys)
        self.readiness_changed.emit()

    # --- the memory plan ------------------------------------------------------------------------------
    def set_planned_size(self, choice: str) -> None:
        plan_gpu.set_planned_size(choice)
        self.planned_size = choice
        self.update_plan()

    def set_gpu(self, gpu: GpuInfo | None) -> None:
        self.gpu = gpu
        self.gpu_detected.emit(gpu)
        self.update_plan()

    def update_plan(self) -> None:
        """The estimate and verdict for the current settings: once per change, for every page that shows them."""
        from studio.plan import verdict
        from studio.plan.multigpu import gpu_count, plan_on_gpus

        gpu = plan_gpu.planning_gpu(self.gpu, self.planned_size)
        config, problem = self._model_config()
        if config is None:
            self.plan = Plan(gpu, problem=problem)
        else:
            found = gpu_count() if self.gpu is not None and self.gpu.available else 0  # counted at start-up
            try:  # per GPU when the project trains on several
                est = plan_on_gpus(config, self.project, found, gpu.free_bytes if gpu.available else None)
                self.plan = Plan(gpu, config, est, verdict(est, gpu, gpus=max(1, found)))
            except StudioError as error:
                self.plan = Plan(gpu, config, problem=str(error))
        self.plan_changed.emit()

    def _model_config(self) -> tuple[dict | None, str]:
        """The base model's config, read once per model name (a catalog entry, a folder, or the Hub cache)."""
        from studio.catalog import config_for

        name = self.project.model.name
        if self._config_for is None or self._config_for[0] != name:
            try:
                self._config_for = (name, config_for(name, self.project), "")
            except StudioError as error:
                self._config_for = (name, None, str(error))
        return self._config_for[1], self._config_for[2]

    # --- runs and work --------------------------------------------------------------------------------
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
