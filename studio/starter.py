"""The project a first-time user finds ready: the embedded model on the pirate sample, a short LoRA run, in
the user's projects folder (studio.paths.projects_dir). `ftstudio new --starter` writes the same project."""
from __future__ import annotations

from pathlib import Path

from studio.project import Project, project_file, save_project


def starter_project(path: Path) -> Project:
    """A project that trains as it is, written to `path`: the demo's pirate sample and settings, two epochs."""
    from studio.demo import demo_project

    path = project_file(path)
    project = demo_project(path.parent, steps=0, save=False)
    project.name = path.name.removesuffix(".ftproj.toml")
    project.train.epochs = 2.0
    save_project(project, path)
    return project
