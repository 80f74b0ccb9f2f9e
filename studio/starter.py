"""The project a first-time user finds ready: the embedded model on the pirate sample, a short LoRA run, in
the user's Documents folder. `ftstudio new --starter` writes the same project."""
from __future__ import annotations

from pathlib import Path

from studio import paths
from studio.project import Project, project_file, save_project


def default_projects_dir() -> Path:
    """Where new projects go: FTSTUDIO_HOME/projects when set (tests), else Documents/Fine-Tune Studio."""
    import os

    import platformdirs

    if os.environ.get("FTSTUDIO_HOME"):
        folder = paths.home() / "projects"
    else:
        folder = Path(platformdirs.user_documents_dir()) / "Fine-Tune Studio"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def starter_project(path: Path) -> Project:
    """A project that trains as it is, written to `path`: the demo's pirate sample and settings, two epochs."""
    from studio.demo import demo_project

    path = project_file(path)
    project = demo_project(path.parent, steps=0, save=False)
    project.name = path.name.removesuffix(".ftproj.toml")
    project.train.epochs = 2.0
    save_project(project, path)
    return project
