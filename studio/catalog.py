"""The catalog of base models the studio knows by name (resources/catalog.json), usable with no network.

Each entry carries the published config.json values that shape the model, so the memory planner can size
any catalog model before a byte is downloaded. The embedded default comes first: it ships with the app.
A project names a catalog model by its `id` (the Hub id, or "embedded:..." for the embedded default).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from studio import paths, units
from studio.errors import ModelError
from studio.hub import is_hub_id

CATALOG_FILE = paths.RESOURCES / "catalog.json"


@dataclass(frozen=True)
class CatalogModel:
    name: str  # what the user sees: "Qwen2.5-1.5B-Instruct"
    id: str  # what the project stores in [model] name
    hub_id: str
    parameters: int  # as the model card publishes it
    license: str
    context_length: int
    chat_template: str  # the template family: chatml, llama3, mistral, gemma, phi3
    config: dict = field(repr=False)
    embedded: bool = False
    gated: bool = False  # the Hub asks for a licence to be accepted and a login before downloading
    note: str = ""

    @property
    def size_text(self) -> str:
        return units.parameters(self.parameters)


@lru_cache(maxsize=1)
def list_models() -> tuple[CatalogModel, ...]:
    """Every catalog model, the embedded default first."""
    try:
        raw = json.loads(CATALOG_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"The model catalog {CATALOG_FILE} cannot be read ({exc}); reinstall the app.") from None
    models = tuple(CatalogModel(**entry) for entry in raw["models"])
    return tuple(sorted(models, key=lambda m: not m.embedded))  # stable: the file's order otherwise


def find(name: str) -> CatalogModel | None:
    """The catalog entry a project's model name refers to: its id, Hub id or display name (any case)."""
    from studio.models import is_embedded

    key = name.strip().lower()
    for model in list_models():
        if key in {model.id.lower(), model.hub_id.lower(), model.name.lower()}:
            return model
        if model.embedded and is_embedded(name):
            return model
    return None


def config_for(name: str, project=None) -> dict | None:
    """A config.json dict for the planner, without touching the network: the catalog's for catalog models,
    else the model folder's own config.json (relative folders are resolved against the project), else the
    Hugging Face cache's copy of a Hub model. None when nothing on this computer describes the model."""
    if not name.strip():
        return None
    model = find(name)
    if model is not None:
        return dict(model.config)
    folder = project.resolve(name) if project is not None else Path(name).expanduser()
    config = folder / "config.json"
    if config.is_file():
        try:
            return json.loads(config.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise ModelError(f"{config} is not valid JSON; the model folder looks damaged.") from None
    cached = hub_cache_folder(name)
    return json.loads((cached / "config.json").read_text(encoding="utf-8")) if cached else None


def hub_cache_folder(hub_id: str) -> Path | None:
    """The Hugging Face cache's snapshot of a Hub model when config and weights are both there, else None."""
    if not is_hub_id(hub_id):
        return None
    from huggingface_hub import constants

    snapshots = Path(constants.HF_HUB_CACHE) / f"models--{hub_id.replace('/', '--')}" / "snapshots"
    if not snapshots.is_dir():
        return None
    for snapshot in sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True):
        if (snapshot / "config.json").is_file() and any(snapshot.glob("*.safetensors")):
            return snapshot
    return None


def on_this_computer(model: CatalogModel) -> bool:
    """Whether training can start with no download: the embedded model always can (it ships with the app)."""
    return model.embedded or hub_cache_folder(model.hub_id) is not None
