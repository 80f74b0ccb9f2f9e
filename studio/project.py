"""The project file: one TOML file that holds every choice a user makes.

The GUI edits a `Project`, the CLI reads one, and every stage takes one. Loading refuses unknown keys and
impossible values with a message that names the key, so a typo never silently falls back to a default.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Collection

import tomli_w

from studio.errors import ProjectError
from studio.fileio import atomic_write_text
from studio.vocabulary import METHODS, OPTIMIZERS, QUANT_TYPES, ROW_FORMATS

DATA_FORMATS = ("auto", *ROW_FORMATS)
SCHEDULERS = ("cosine", "linear", "constant", "constant_with_warmup")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
MAX_SEQ_LEN = (16, 1_048_576)  # the cutoff a project may hold, in tokens: the Method page offers this range
EMBEDDED_MODEL = "embedded:SmolLM2-135M-Instruct"


@dataclass
class ModelSettings:
    # "embedded:SmolLM2-135M-Instruct", a local model folder, or a Hugging Face Hub id.
    name: str = EMBEDDED_MODEL
    # Some model folders ship their own Python code (config.json "auto_map"); it runs only when this is true.
    trust_remote_code: bool = False


@dataclass
class DataSettings:
    train_file: str = ""
    sheet: str = ""  # the sheet of a workbook train_file; empty: the first sheet with data
    eval_file: str = ""  # empty: split eval_fraction off the training file
    eval_fraction: float = 0.1
    format: str = "auto"
    # Explicit column mapping that overrides detection, e.g. {"prompt": "question", "completion": "answer"}.
    columns: dict[str, str] = field(default_factory=dict)
    train_on: str = "assistant"  # "assistant": loss on the answers only; "all": on every token
    skip_bad_rows: bool = True
    drop_duplicates: bool = False
    system_prompt: str = ""


@dataclass
class MethodSettings:
    method: str = "lora"
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    # "all-linear" targets every linear layer but the output head, as the LoRA practice recommends.
    target_modules: list[str] = field(default_factory=lambda: ["all-linear"])


@dataclass
class TrainSettings:
    epochs: float = 1.0
    max_steps: int = 0  # 0: run `epochs` epochs
    learning_rate: float = 2e-4
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    batch_size: int = 4
    grad_accumulation: int = 1
    max_seq_len: int = 1024
    seed: int = 42
    gradient_checkpointing: bool = False
    # With checkpointing: keep each layer's saved input in CPU memory instead of on the GPU.
    offload_checkpoints: bool = False
    optimizer: str = "adamw_torch"
    precision: str = "auto"
    # Padding-free batches: up to batch_size x max_seq_len real tokens packed in one row, none spent on pads.
    packing: bool = True
    # Compute the loss over chunks of positions, never holding the whole batch's logits (studio.train.loss).
    lean_loss: bool = True
    logging_steps: int = 1
    eval_steps: int = 0  # 0: evaluate about 10 times per run
    save_steps: int = 0  # 0: save about 5 checkpoints per run
    # Which GPUs train: "auto" (every GPU of this computer), a number of GPUs (2), or which ones ([0, 1]).
    # More than one runs data-parallel, one process per GPU (studio.train.distributed).
    devices: str | int | list[int] = "auto"


@dataclass
class ExportSettings:
    quant: list[str] = field(default_factory=lambda: ["f16", "q8_0", "q4_k_m"])
    model_name: str = ""  # the name shown in Ollama / LM Studio; empty: the project's name
    ollama: bool = False
    lmstudio: bool = False
    output_dir: str = ""  # empty: the run folder's export/


@dataclass
class EvaluateSettings:
    # Check each run against its base model (studio.evaluate): right after training, and the GGUF after export.
    after_training: bool = True
    after_export: bool = True
    # "quick": a fixed 60 % of the general questions (every category) and 1,024 prose tokens, under a minute on a
    # CPU; "thorough": all of them, firmer when a verdict is close (studio.evaluate.general). Compare runs checked
    # the same way.
    check: str = "quick"


SECTIONS = {"model": ModelSettings, "data": DataSettings, "method": MethodSettings,
            "train": TrainSettings, "export": ExportSettings, "evaluate": EvaluateSettings}


@dataclass
class Project:
    name: str = "my-model"
    model: ModelSettings = field(default_factory=ModelSettings)
    data: DataSettings = field(default_factory=DataSettings)
    method: MethodSettings = field(default_factory=MethodSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    export: ExportSettings = field(default_factory=ExportSettings)
    evaluate: EvaluateSettings = field(default_factory=EvaluateSettings)
    # Where the project file lives; relative paths inside it are relative to this folder. Not saved.
    path: Path | None = field(default=None, compare=False)

    @property
    def folder(self) -> Path:
        return self.path.parent if self.path else Path.cwd()

    def resolve(self, relative: str) -> Path:
        """A path from the project file, made absolute against the project's folder."""
        p = Path(relative).expanduser()
        return p if p.is_absolute() else (self.folder / p).resolve()

    def file_name(self, path: str | Path) -> str:
        """How the project file names a file it uses: relative to the project's folder when the file lies
        inside it (the two move together), else its absolute path."""
        path = Path(path).resolve()
        if self.path is not None and path.is_relative_to(self.folder.resolve()):
            return str(path.relative_to(self.folder.resolve()))
        return str(path)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        for section in SECTIONS:
            out[section] = dataclasses.asdict(getattr(self, section))
        return out

    def validate(self) -> None:
        """Raise ProjectError naming the first impossible value."""
        _check_choice("method.method", self.method.method, METHODS)
        _check_choice("data.format", self.data.format, DATA_FORMATS)
        _check_choice("data.train_on", self.data.train_on, ("assistant", "all"))
        _check_choice("train.lr_scheduler", self.train.lr_scheduler, SCHEDULERS)
        _check_choice("train.optimizer", self.train.optimizer, OPTIMIZERS)
        _check_choice("train.precision", self.train.precision, PRECISIONS)
        _check_choice("evaluate.check", self.evaluate.check, ("quick", "thorough"))
        for q in self.export.quant:
            _check_choice("export.quant", q, QUANT_TYPES)
        _check_range("method.rank", self.method.rank, 1, 4096)
        _check_range("method.alpha", self.method.alpha, 1, 16384)
        _check_range("method.dropout", self.method.dropout, 0.0, 0.9)
        _check_range("train.epochs", self.train.epochs, 0.0, 1000.0)
        _check_range("train.max_steps", self.train.max_steps, 0, 10_000_000)
        _check_range("train.learning_rate", self.train.learning_rate, 1e-9, 1.0)
        _check_range("train.warmup_ratio", self.train.warmup_ratio, 0.0, 0.5)
        _check_range("train.batch_size", self.train.batch_size, 1, 4096)
        _check_range("train.grad_accumulation", self.train.grad_accumulation, 1, 4096)
        _check_range("train.max_seq_len", self.train.max_seq_len, *MAX_SEQ_LEN)
        _check_range("data.eval_fraction", self.data.eval_fraction, 0.0, 0.5)
        _check_range("train.weight_decay", self.train.weight_decay, 0.0, 1.0)
        _check_range("train.seed", self.train.seed, 0, 2**32 - 1)
        _check_range("train.logging_steps", self.train.logging_steps, 1, 1_000_000)
        _check_range("train.eval_steps", self.train.eval_steps, 0, 10_000_000)
        _check_range("train.save_steps", self.train.save_steps, 0, 10_000_000)
        self.train.devices = parse_devices(self.train.devices)
        if self.data.sheet:
            from studio.data.readers import SHEETS

            if Path(self.data.train_file).suffix.lower() not in SHEETS:
                raise ProjectError(f"data.sheet = {self.data.sheet!r} only applies to a spreadsheet "
                                   f"({', '.join(SHEETS)}), and data.train_file is {self.data.train_file!r}: "
                                   "remove data.sheet or choose a workbook.")
        if self.train.offload_checkpoints and not self.train.gradient_checkpointing:
            raise ProjectError("train.offload_checkpoints = true only works with gradient checkpointing: "
                               "set train.gradient_checkpointing = true too, or turn offloading off.")
        if self.train.epochs == 0 and self.train.max_steps == 0:
            raise ProjectError("train.epochs and train.max_steps are both 0: set one of them to say how long to train.")
        if not self.name.strip():
            raise ProjectError("name is empty: give the project a name.")


def _check_choice(key: str, value: Any, allowed: Collection[str]) -> None:
    if value not in allowed:
        raise ProjectError(f"{key} = {value!r} is not one of: {', '.join(allowed)}.")


def _check_range(key: str, value: Any, low: float, high: float) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ProjectError(f"{key} = {value!r} is not a number; give one from {_number(low)} to {_number(high)}.")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (low <= value <= high):
        raise ProjectError(f"{key} = {value!r} must be a number from {_number(low)} to {_number(high)}.")


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def parse_devices(value: Any) -> str | int | list[int]:
    """train.devices as "auto", a number of GPUs, or a list of GPU indices; text as typed in the app
    ("auto", "2", "[0, 1]" or "0, 1") is read the same way. Raises ProjectError for anything else."""
    problem = (f"train.devices = {value!r} must be \"auto\", a number of GPUs (like 2), or a list of GPU "
               "numbers (like [0, 1]).")
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "auto":
            return "auto"
        if text.isdigit():
            value = int(text)
        else:
            try:
                value = [int(part) for part in text.strip("[]").split(",") if part.strip()]
            except ValueError:
                raise ProjectError(problem) from None
    if isinstance(value, bool):
        raise ProjectError(problem)
    if isinstance(value, int):
        if not 1 <= value <= 1024:
            raise ProjectError(problem)
        return value
    if not isinstance(value, (list, tuple)) or not value or \
            not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        raise ProjectError(problem)
    if len(set(value)) != len(value):
        raise ProjectError(f"train.devices = {list(value)!r} names a GPU twice: list each GPU once.")
    return list(value)


def _typed(section: str, cls: type, raw: Any) -> Any:
    """Build a settings dataclass from a TOML table, refusing unknown keys and wrong types by name."""
    if not isinstance(raw, dict):
        raise ProjectError(f"[{section}] must be a table of settings, not {type(raw).__name__}.")
    known = {f.name: f for f in fields(cls)}
    values = {}
    for key, value in raw.items():
        if key not in known:
            hint = difflib.get_close_matches(key, known, n=1)
            extra = f" Did you mean {hint[0]!r}?" if hint else f" Known settings: {', '.join(known)}."
            raise ProjectError(f"[{section}] {key!r} is not a setting Fine-Tune Studio knows.{extra}")
        default = getattr(cls(), key)
        values[key] = _coerce(f"{section}.{key}", value, default)
    return cls(**values)


def _coerce(key: str, value: Any, default: Any) -> Any:
    if key == "train.devices":  # the one setting that takes several types
        return parse_devices(value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ProjectError(f"{key} = {value!r} must be true or false.")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ProjectError(f"{key} = {value!r} must be a number.")
        return float(value)
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ProjectError(f"{key} = {value!r} must be a whole number.")
        return value
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ProjectError(f"{key} = {value!r} must be text (in quotes).")
        return value
    if isinstance(default, list):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ProjectError(f"{key} = {value!r} must be a list of text values.")
        return value
    if isinstance(default, dict):
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise ProjectError(f"{key} must be a table of text values.")
        return dict(value)
    return value


def project_from_dict(raw: dict[str, Any], path: Path | None = None) -> Project:
    unknown = set(raw) - set(SECTIONS) - {"name"}
    if unknown:
        key = sorted(unknown)[0]
        hint = difflib.get_close_matches(key, list(SECTIONS) + ["name"], n=1)
        extra = f" Did you mean [{hint[0]}]?" if hint else ""
        raise ProjectError(f"{key!r} is not a section Fine-Tune Studio knows.{extra}")
    name = raw.get("name", Project().name)
    if not isinstance(name, str):
        raise ProjectError(f"name = {name!r} must be text.")
    project = Project(name=name, path=path)
    for section, cls in SECTIONS.items():
        if section in raw:
            setattr(project, section, _typed(section, cls, raw[section]))
    project.validate()
    return project


def load_project(path: str | Path) -> Project:
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise ProjectError(f"Project file {path} does not exist. Create one with `ftstudio new {path.name}`.")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ProjectError(f"Project file {path} is not UTF-8 text.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProjectError(f"Project file {path} is not valid TOML: {exc}.") from None
    try:
        return project_from_dict(raw, path)
    except ProjectError as exc:
        raise ProjectError(f"{path.name}: {exc}") from None


def save_project(project: Project, path: str | Path | None = None) -> Path:
    project.validate()
    target = Path(path or project.path or f"{project.name}.ftproj.toml").expanduser().resolve()
    atomic_write_text(target, tomli_w.dumps(project.to_dict()))
    project.path = target
    return target


def project_file(path: str | Path) -> Path:
    """A project file's path, with the .ftproj.toml ending the app and the file dialogs look for."""
    path = Path(path)
    return path if path.name.endswith(".ftproj.toml") else path.with_name(path.name + ".ftproj.toml")
