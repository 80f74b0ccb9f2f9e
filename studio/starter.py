"""The project a first-time user finds ready: the embedded model on the pirate sample, a short LoRA run, in
the user's Documents folder."""
from __future__ import annotations

from pathlib import Path

from studio import paths
from studio.project import Project, save_project


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
    """A project that trains as it is: the embedded model on the pirate sample, a short LoRA run."""
    from studio.demo import SAMPLE, demo_project

    if not path.name.endswith(".ftproj.toml"):
        path = path.with_name(path.name + ".ftproj.toml")
    name = path.name.removesuffix(".ftproj.toml")
    project = demo_project(path.parent, steps=0)
    project.name = name
    project.train.max_steps = 0
    project.train.epochs = 2.0
    project.data.train_file = SAMPLE.name
    project.path = path
    (path.parent / "pirate-demo.ftproj.toml").unlink(missing_ok=True)
    save_project(project, path)
    return project
