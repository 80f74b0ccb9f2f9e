"""The projects a user starts from: the pirate sample (to try the app), a project on the user's own data file,
or an empty one (File ▸ New), each in the user's projects folder (studio.paths.projects_dir).
`ftstudio new --starter` writes the sample project.

A user's model must never carry the sample's name: a project on their own data is named after their file (or
their choice), and a sample project whose data the user replaced exports under the new data's name."""
from __future__ import annotations

import re
from pathlib import Path

from studio import paths
from studio.project import Project, project_file, save_project

SAMPLE_NAME = "pirate-demo"  # the sample project's name (and `ftstudio demo`'s)
SAMPLE_DESCRIPTION = "a pirate-speaking assistant"


def starter_project(path: Path) -> Project:
    """The sample: a project that trains as it is, written to `path`: the demo's pirate data and settings,
    two epochs."""
    from studio.demo import demo_project

    path = project_file(path)
    project = demo_project(path.parent, steps=0, save=False)
    project.name = path.name.removesuffix(".ftproj.toml")
    project.train.epochs = 2.0
    save_project(project, path)
    return project


def sample_project_path() -> Path:
    return paths.projects_dir() / SAMPLE_NAME / f"{SAMPLE_NAME}.ftproj.toml"


def blank_project(path: Path, data_file: Path | None = None) -> Project:
    """A new project with the default settings (the embedded model, LoRA) written to `path`; with no data
    file the Data page asks for one."""
    path = project_file(path)
    project = Project(name=path.name.removesuffix(".ftproj.toml"))
    project.path = path.resolve()
    if data_file is not None:
        project.data.train_file = project.file_name(data_file)
    save_project(project, path)
    return project


def own_data_project(data_file: Path, name: str = "") -> Project:
    """A new project on the user's data file, named `name` or after the file, in its own folder of the
    projects folder (a free name: an existing project is never replaced)."""
    name = slug(name) if name.strip() else name_for_data(data_file)
    return blank_project(free_project_path(name), Path(data_file))


def free_project_path(name: str) -> Path:
    """projects_dir()/name/name.ftproj.toml, or name-2, name-3… when that project exists already."""
    base, number = slug(name), 1
    while True:
        candidate = base if number == 1 else f"{base}-{number}"
        path = paths.projects_dir() / candidate / f"{candidate}.ftproj.toml"
        if not path.exists():
            return path
        number += 1


def slug(text: str) -> str:
    """A name that is safe as a file name and an Ollama model name: "My recipes (v2)" → "my-recipes-v2"."""
    return re.sub(r"[^a-z0-9._-]+", "-", text.strip().lower()).strip("-._") or "my-model"


def name_for_data(data_file: str | Path) -> str:
    """The model's name taken from its data file: "Customer_FAQ.csv" → "customer_faq"."""
    return slug(Path(data_file).name.split(".")[0])


def uses_sample_data(project: Project) -> bool:
    from studio.demo import SAMPLE

    return Path(project.data.train_file).name == SAMPLE.name


def is_sample(project: Project) -> bool:
    """Whether this is the sample project as it came (its name and its pirate data)."""
    return project.name == SAMPLE_NAME and uses_sample_data(project)


def name_after_data(project: Project) -> str | None:
    """The name a model still called after the sample takes once the user's own data replaced the pirate data
    (its export files and Ollama model are named after it); None when the model has a name of its own."""
    if (project.export.model_name or project.name) != SAMPLE_NAME:
        return None
    if not project.data.train_file or uses_sample_data(project):
        return None
    return name_for_data(project.data.train_file)
