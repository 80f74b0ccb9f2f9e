"""The main window: a stage list on the left, one page per stage, the project menu, and the status bar.

Only the frame lives here; each stage's page is its own module under ui/pages, and every number comes from
`studio`. Nothing heavy (torch, transformers, llama.cpp) is imported before the window is on screen; only
torch's main native library is loaded (preload_torch_library says why)."""
from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtGui import QAction, QIcon, QKeySequence
from PySide6.QtWidgets import (QApplication, QCheckBox, QFileDialog, QHBoxLayout, QLabel, QListView, QListWidget,
                               QListWidgetItem, QMainWindow, QMessageBox, QSizePolicy, QStackedWidget, QWidget)

from studio import paths, starter, units
from studio.errors import StudioError
from studio.project import Project, load_project, project_file
from ui import recent, theme
from ui.context import Studio
from ui.pages.data import DataPage
from ui.pages.export import ExportPage
from ui.pages.method import MethodPage
from ui.pages.model import ModelPage
from ui.pages.results import ResultsPage
from ui.pages.test import TestPage
from ui.pages.train import TrainPage
from ui.tasks import NOTICES, Task, running_tasks, stop_all
from ui.welcome import Welcome

PAGE_CLASSES = (ModelPage, DataPage, MethodPage, TrainPage, ResultsPage, TestPage, ExportPage)
STAGES = [cls.title for cls in PAGE_CLASSES]
PROJECT_FILTER = "Fine-Tune Studio projects (*.ftproj.toml)"


def icon(name: str) -> QIcon:
    return QIcon(str(paths.RESOURCES / "icons" / name)) if name else QIcon()


# Closed windows whose background work (a training run saving itself, a GPU query) still runs: kept alive
# here until it ends, because a window deleted under a running thread takes the whole process down.
_CLOSING: set[QMainWindow] = set()


class MainWindow(QMainWindow):
    def __init__(self, project: Project, welcome: bool = False):
        """`welcome`: first start (no recent project): the welcome screen shows instead of the stages until
        the user picks the sample or their own data; `project` is an unsaved placeholder meanwhile."""
        super().__init__()
        # The charts' library, imported while the window is being built: done by the time a user opens Train.
        self._charts_task = Task(import_chart_library, self, on_failure=None).start()
        self.studio = Studio(project)
        self.resize(1180, 760)
        self.setWindowIcon(icon("app.svg"))
        self.stages = QListWidget()
        self.stages.setObjectName("stages")
        self.stages.setIconSize(QSize(22, 22))
        self.stages.setFixedWidth(230)
        # A stage's line wraps instead of hiding behind a horizontal scroll bar; the whole line is its tooltip.
        self.stages.setWordWrap(True)
        self.stages.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.stages.setResizeMode(QListView.ResizeMode.Adjust)
        self.pages = QStackedWidget()
        # No page may widen the window: a page's minimum width (a long path in a label) is not passed up, so
        # the window keeps the size the user gave it and the page's own labels wrap or elide.
        self.pages.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.pages.setMinimumWidth(0)
        self.page_list = [cls(self.studio) for cls in PAGE_CLASSES]
        for page in self.page_list:
            self.pages.addWidget(page)
            self.stages.addItem(QListWidgetItem(icon(page.icon), page.title))
        self.stages.currentRowChanged.connect(self.pages.setCurrentIndex)
        body = QWidget()
        layout = QHBoxLayout(body)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.stages)
        layout.addWidget(self.pages, 1)
        self.screens = QStackedWidget()  # the welcome (first start only), then the stages and their pages
        self.screens.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.screens.addWidget(body)
        self.welcome = None
        if welcome:
            self.welcome = Welcome()
            self.welcome.sample_chosen.connect(self.start_with_sample)
            self.welcome.own_data_chosen.connect(self.start_with_own_data)
            self.screens.insertWidget(0, self.welcome)
            self.screens.setCurrentWidget(self.welcome)
        self.setCentralWidget(self.screens)
        self._build_menus()
        self.studio.readiness_changed.connect(self.refresh_stages)
        # During training or export, and when a run starts, ends or fails, each stage's line may change.
        self.studio.busy_changed.connect(lambda busy: self.refresh_stages())
        self.studio.run_changed.connect(lambda run: self.refresh_stages())
        self.studio.changed.connect(self._name_after_data)
        self.studio.changed.connect(self._update_title)
        self.studio.dirty_changed.connect(self._update_title)
        self.studio.gpu_detected.connect(self._show_gpu)
        self.studio.view_changed.connect(self._show_view)
        # Expert settings are one click away: this switch sits in the status bar of every page.
        self.view_switch = QCheckBox("Expert view")
        self.view_switch.setToolTip("Show every setting with its technical name. Simple view shows the choices "
                                    "that matter and decides the rest for you.")
        self.view_switch.setChecked(self.studio.expert)
        self.view_switch.toggled.connect(self.studio.set_expert)
        # The sample says it is one, on every page (the title says it too).
        self.sample_note = QLabel(f"Sample project: {starter.SAMPLE_DESCRIPTION}")
        self.sample_note.setToolTip("To train on your own examples, choose your file on the Data page (your model "
                                    "then takes its name), or start a new project with File ▸ New.")
        self.sample_note.hide()
        self.statusBar().addPermanentWidget(self.sample_note)
        self.statusBar().addPermanentWidget(self.view_switch)
        NOTICES.failure.connect(self._show_failure)
        preload_torch_library()  # before any page starts background work, and before the window shows
        self.studio.load(project)
        self.stages.setCurrentRow(0)
        self.statusBar().showMessage("Looking for a graphics card (GPU)…")
        # After the window is painted: the first GPU query can take a second (NVML or torch import).
        QTimer.singleShot(0, self._detect_gpu)

    # --- pages and stage list -------------------------------------------------------------------------
    def page(self, cls):
        return next(p for p in self.page_list if isinstance(p, cls))

    def go_to(self, cls) -> None:
        self.stages.setCurrentRow(self.page_list.index(self.page(cls)))

    # --- first start ----------------------------------------------------------------------------------
    def start_with_sample(self) -> None:
        path = starter.sample_project_path()
        try:
            project = load_project(path) if path.is_file() else starter.starter_project(path)
        except StudioError:
            project = starter.starter_project(path)  # a sample the user broke by hand: a fresh copy
        self._leave_welcome(project)

    def start_with_own_data(self, data_file: Path, name: str) -> None:
        try:
            project = starter.own_data_project(data_file, name)
        except (StudioError, OSError) as error:
            if self.welcome is not None:
                self.welcome.problem.setText(f"Could not make the project: {error}")
            return
        self._leave_welcome(project)
        self.go_to(DataPage)

    def _leave_welcome(self, project: Project) -> None:
        self.studio.load(project)
        recent.add(project.path)
        if self.welcome is not None:
            self.screens.removeWidget(self.welcome)
            self.welcome.deleteLater()
            self.welcome = None
        self.screens.setCurrentIndex(0)

    def _name_after_data(self, keys) -> None:
        """A project still named after the sample, given the user's own data: their model takes their data's
        name (its export files and Ollama model), so nothing they make is called "pirate-demo"."""
        name = starter.name_after_data(self.studio.project)
        if name is not None:
            self.studio.apply({"export.model_name": name})
            self.statusBar().showMessage(f"Your model is now called “{name}”, after your data (change it on the "
                                         "Export page).", 10_000)

    def refresh_stages(self) -> None:
        for row, page in enumerate(self.page_list):
            ready, line = page.readiness()
            item = self.stages.item(row)
            mark = "✓" if ready else "•"
            item.setText(f"{page.title}  {mark}\n{line}" if line else f"{page.title}  {mark}")
            item.setToolTip(line)

    # --- menus ----------------------------------------------------------------------------------------
    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self._add_action(file_menu, "&New project…", QKeySequence.StandardKey.New, self.new_project)
        self._add_action(file_menu, "&Open project…", QKeySequence.StandardKey.Open, self.open_project)
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        self._add_action(file_menu, "&Save", QKeySequence.StandardKey.Save, self.save)
        self._add_action(file_menu, "Save &as…", QKeySequence.StandardKey.SaveAs, self.save_as)
        file_menu.addSeparator()
        self._add_action(file_menu, "&Quit", QKeySequence.StandardKey.Quit, self.close)
        view_menu = self.menuBar().addMenu("&View")
        for row, page in enumerate(self.page_list):
            self._add_action(view_menu, page.title, QKeySequence(f"Ctrl+{row + 1}"),
                             lambda checked=False, r=row: self.stages.setCurrentRow(r))
        view_menu.addSeparator()
        self.expert_action = self._add_action(view_menu, "&Expert view (every setting, technical names)",
                                              QKeySequence("Ctrl+E"), self.studio.set_expert)
        self.expert_action.setCheckable(True)
        self.expert_action.setChecked(self.studio.expert)
        theme_menu = view_menu.addMenu("&Theme")
        for name in theme.THEMES:
            self._add_action(theme_menu, name.capitalize(), None, lambda checked=False, n=name: theme.apply(n))
        help_menu = self.menuBar().addMenu("&Help")
        if sys.platform != "darwin":
            self._add_action(help_menu, "Add to the applications &menu and desktop", None, self.add_launcher)
        self._add_action(help_menu, "&About Fine-Tune Studio", None, self._about)

    def _add_action(self, menu, text, shortcut, slot) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(shortcut)
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        entries = recent.load()
        if not entries:
            self.recent_menu.addAction("(none yet)").setEnabled(False)
        for path in entries:
            self.recent_menu.addAction(str(path), lambda p=path: self.open_path(p))

    # --- project files --------------------------------------------------------------------------------
    def _update_title(self, *_) -> None:
        project = self.studio.project
        where = f" — {project.path}" if project.path else ""
        sample = " (the sample project)" if starter.is_sample(project) else ""
        self.sample_note.setVisible(bool(sample))
        self.setWindowTitle(f"{'*' if self.studio.dirty else ''}{project.name}{sample}{where} — Fine-Tune Studio")

    def _may_discard(self) -> bool:
        if not self.studio.dirty:
            return True
        answer = QMessageBox.question(
            self, "Unsaved changes", f"Save the changes to “{self.studio.project.name}” first?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel)
        if answer == QMessageBox.StandardButton.Save:
            return self.save()
        return answer == QMessageBox.StandardButton.Discard

    def _busy_refusal(self) -> bool:
        if self.studio.busy:
            QMessageBox.information(self, "Busy", "Training or export is running. Stop it first.")
        return self.studio.busy

    def new_project(self) -> None:
        if self._busy_refusal() or not self._may_discard():
            return
        suggested = starter.free_project_path("my-model")
        path, _ = QFileDialog.getSaveFileName(self, "New project: your model's name", str(suggested), PROJECT_FILTER)
        if path:
            self.create_project(Path(path))

    def create_project(self, path: Path) -> None:
        """An empty project at `path`, named after its file: no data yet (the Data page asks for it)."""
        try:
            project = starter.blank_project(path)
        except (StudioError, OSError) as error:
            QMessageBox.warning(self, "Cannot make the project", str(error))
            return
        self._leave_welcome(project)
        self.go_to(DataPage)

    def open_project(self) -> None:
        if self._busy_refusal() or not self._may_discard():
            return
        path, _ = QFileDialog.getOpenFileName(self, "Open project", str(paths.projects_dir()), PROJECT_FILTER)
        if path:
            self.open_path(Path(path))

    def open_path(self, path: Path) -> bool:
        if self._busy_refusal():
            return False
        try:
            project = load_project(path)
        except StudioError as error:
            QMessageBox.warning(self, "Cannot open the project", str(error))
            return False
        self._leave_welcome(project)  # also when opened from the welcome
        return True

    def save(self) -> bool:
        if self.studio.project.path is None:
            return self.save_as()
        try:
            self.studio.save()
        except StudioError as error:
            QMessageBox.warning(self, "Cannot save the project", str(error))
            return False
        self.statusBar().showMessage(f"Saved {self.studio.project.path}", 4000)
        return True

    def save_as(self) -> bool:
        start = str(self.studio.project.path or paths.projects_dir() / f"{self.studio.project.name}.ftproj.toml")
        path, _ = QFileDialog.getSaveFileName(self, "Save project as", start, PROJECT_FILTER)
        if not path:
            return False
        try:
            self.studio.save(project_file(path))
        except StudioError as error:
            QMessageBox.warning(self, "Cannot save the project", str(error))
            return False
        self._update_title()
        recent.add(self.studio.project.path)
        return True

    # --- GPU, about, closing --------------------------------------------------------------------------
    def _detect_gpu(self) -> None:
        def work(progress, cancelled):
            from studio.plan import detect_gpu
            from studio.plan.multigpu import gpu_count
            gpu_count()  # counted here, off the GUI thread, and kept for the Method page
            return detect_gpu()

        self._gpu_task = Task(work, self, on_success=self.studio.set_gpu).start()

    def _show_view(self, expert: bool) -> None:
        for control in (self.view_switch, self.expert_action):
            if control.isChecked() != expert:
                control.setChecked(expert)

    def _show_failure(self, message: str) -> None:
        self.statusBar().showMessage(message, 15_000)

    def _show_gpu(self, gpu) -> None:
        if gpu is not None and gpu.total_bytes:
            free = f", {units.memory(gpu.free_bytes)} of it free now" if gpu.free_bytes is not None else ""
            self.statusBar().showMessage(f"Training runs on your graphics card (GPU): {gpu.name}, with "
                                         f"{units.memory(gpu.total_bytes)} of memory{free}.")
        else:
            self.statusBar().showMessage("No NVIDIA graphics card (GPU) found: training runs on the processor, "
                                         "slowly (fine for a quick try with a small model).")

    def add_launcher(self) -> None:
        """A launcher in the system's menu and on the desktop (studio.shortcut), made off the GUI thread:
        on Windows it takes PowerShell a second or two."""
        from studio import shortcut

        self._launcher_task = Task(
            lambda progress, cancelled: shortcut.install(desktop=True), self,
            on_success=lambda written: self.statusBar().showMessage(
                f"{shortcut.APP_NAME} is now in your applications menu and on your desktop.", 8000),
            on_failure=lambda message: QMessageBox.warning(self, "No launcher made", message)).start()

    def _about(self) -> None:
        QMessageBox.about(self, "About Fine-Tune Studio",
                          "Fine-Tune Studio: fine-tune a language model on your own GPU and take home a GGUF "
                          "for llama.cpp, Ollama or LM Studio.")

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        for page in self.page_list:
            if hasattr(page, "confirm_close") and not page.confirm_close():
                event.ignore()
                return
        if not self._may_discard():
            event.ignore()
            return
        for page in self.page_list:
            if hasattr(page, "shutdown"):
                page.shutdown()  # asks, never waits: a training run saves itself in its own process
        # A closed window starts no new work: when the run's end arrives, no page hears of it (the Results
        # page would start checking the run, the Export page its checks).
        self.studio.blockSignals(True)
        self._keep_until_tasks_end()
        event.accept()

    def _keep_until_tasks_end(self) -> None:
        """The window closes at once; what still runs in its background (a run's last events while it saves,
        the GPU query) keeps the window object alive until it ends, so no thread outlives its owner."""
        if not running_tasks(self) or self in _CLOSING:
            return
        _CLOSING.add(self)
        timer = QTimer(self)
        timer.setInterval(100)

        def check():
            if not running_tasks(self):
                timer.stop()
                _CLOSING.discard(self)
                if self._delete_when_idle:
                    super(MainWindow, self).deleteLater()

        timer.timeout.connect(check)
        timer.start()

    _delete_when_idle = False

    def deleteLater(self) -> None:  # noqa: N802 - Qt's name
        """Deleted only once its background work has ended: a window deleted under a running task's thread
        takes the whole process down (seen in test teardown after a close during training)."""
        if running_tasks(self):
            self._delete_when_idle = True
            self._keep_until_tasks_end()
        else:
            super().deleteLater()


def preload_torch_library() -> None:
    """Load torch's main native library (libtorch_cpu) once, before the window is on screen.

    Loading it takes 0.2-0.4 s during which Python's lock is held: the one part of importing torch that a
    background thread cannot share with the window. The pages' background work (reading the data's tokens, the
    GPU query) imports torch soon after start-up, which froze the window for up to 0.4 s; with the library
    already loaded, the rest of that import leaves the window responsive (bench/cold_start.py). Only the
    library is loaded here, not torch itself, and a failure only means the import does the loading later."""
    global _TORCH_PRELOADED
    if _TORCH_PRELOADED:
        return
    _TORCH_PRELOADED = True
    import ctypes
    import importlib.util

    try:
        spec = importlib.util.find_spec("torch")  # finds the package without running it
    except (ImportError, ValueError):
        return
    if spec is None or not spec.origin:
        return
    for library in sorted((Path(spec.origin).parent / "lib").glob("*torch_cpu.*")):
        try:
            ctypes.CDLL(str(library))
        except OSError:
            pass
        return


_TORCH_PRELOADED = False


def import_chart_library(progress=None, cancelled=None) -> None:
    """pyqtgraph, imported off the GUI thread: imported when the Train page first showed its charts, it froze
    the window 0.3-0.7 s. A background import is mostly plain Python and shares the lock."""
    import pyqtgraph  # noqa: F401


def first_project() -> Project | None:
    """The project to show when the app opens with no file named: the last one used; None on a first start
    (the welcome then offers the sample or the user's own data)."""
    for path in recent.load():
        try:
            return load_project(path)
        except StudioError:
            continue
    return None


def open_window(project: Project | None) -> MainWindow:
    """The main window on `project`, or on a first start (None) the welcome over an unsaved placeholder."""
    return MainWindow(project or Project(name="my-model"), welcome=project is None)


def report_shown_and_quit(app: QApplication, window: MainWindow) -> None:
    """`ftstudio gui --smoke`: say the window is up (what an installer's smoke test waits for), then close."""
    icons_ok = not window.windowIcon().isNull() and not window.windowIcon().pixmap(32, 32).isNull()
    if window.welcome is not None:  # a first start: take the welcome's first offer, as most first users do
        print("Welcome shown", flush=True)
        window.welcome.sample_button.click()
    print(f"Window shown: {window.windowTitle()}", flush=True)
    print(f"Project: {window.studio.project.path}", flush=True)
    print(f"Icons: {'loaded' if icons_ok else 'MISSING'}", flush=True)
    # Let the start-up work (GPU query, reading the data file) finish first: on a busy machine its import of
    # torch can outlast the waits of a user's close, and a thread still running at exit aborts the process.
    stop_all(300_000)
    window.close()
    app.exit(0 if icons_ok else 1)


def main(project_path: str | None = None, smoke: bool = False) -> int:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Fine-Tune Studio")
    app.setOrganizationName("Fine-Tune Studio")
    theme.apply(theme.saved_choice())
    try:
        project = load_project(project_path) if project_path else first_project()
    except StudioError as error:
        QMessageBox.warning(None, "Cannot open the project", str(error))
        project = first_project()
    if project is not None and project.path:
        recent.add(project.path)
    window = open_window(project)
    window.show()
    if smoke:
        QTimer.singleShot(0, lambda: report_shown_and_quit(app, window))
    return app.exec()
