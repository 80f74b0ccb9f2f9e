"""Named starting points for the method and training settings (resources/presets.json), and the one way to
apply a change keyed like the project file ("train.batch_size") that presets and the planner's fixes share.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, fields

from studio import paths
from studio.errors import ProjectError

PRESETS_FILE = paths.RESOURCES / "presets.json"


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    settings: dict
    full: dict  # what differs for full fine-tuning

    def changes_for(self, method: str) -> dict:
        return {**self.settings, **(self.full if method == "full" else {})}


def list_presets() -> list[Preset]:
    raw = json.loads(PRESETS_FILE.read_text(encoding="utf-8"))
    return [Preset(p["name"], p["description"], p["settings"], p.get("full", {})) for p in raw["presets"]]


def find_preset(name: str) -> Preset:
    for preset in list_presets():
        if preset.name.lower() == name.strip().lower():
            return preset
    known = ", ".join(p.name for p in list_presets())
    raise ProjectError(f"There is no preset called {name!r}. Presets: {known}.")


def apply_preset(project, name: str) -> dict:
    """Apply a preset to the project (for its current method); returns the changes made."""
    changes = find_preset(name).changes_for(project.method.method)
    apply_changes(project, changes)
    return changes


def apply_changes(project, changes: dict) -> None:
    """Set {"section.key": value} on the project. All or nothing: the project is left untouched when a key is
    unknown or a value is impossible (ProjectError names it)."""
    trial = copy.deepcopy(project)
    for key, value in changes.items():
        section_name, _, name = key.partition(".")
        section = getattr(trial, section_name, None)
        if section is None or name not in {f.name for f in fields(section)}:
            raise ProjectError(f"{key!r} is not a project setting.")
        current = getattr(section, name)
        if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        # a list setting may also take a single value (train.devices: [0, 1] -> "auto"): copy lists only
        setattr(section, name, list(value) if isinstance(value, (list, tuple)) else value)
    trial.validate()
    for section_name in {key.partition(".")[0] for key in changes}:
        setattr(project, section_name, getattr(trial, section_name))
