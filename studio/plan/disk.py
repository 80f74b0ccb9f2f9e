"""Will this run finish? The disk the whole pipeline needs, on the drives it will write to, against their
free space; and how long the run takes at the speed a run of this project measured.

Disk, per file the pipeline writes (sizes from the model's parameter counts, the same arithmetic as the
export preflight):
- checkpoints: the trained weights plus the optimizer's two moments, three at the peak (the Trainer keeps
  two and writes the next before deleting the oldest);
- the adapter (or the full model), the merged 16-bit model, the 16-bit GGUF and each quantized GGUF.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

CHECKPOINTS_AT_PEAK = 3
OPTIMIZER_BYTES = {"adamw_8bit": 2, "paged_adamw_8bit": 2, "adafactor": 4}  # per trained value; AdamW: 8
MARGIN_BYTES = 256 * 1024**2  # logs, the tokenizer copies, the report, and rounding


@dataclass
class DiskItem:
    label: str
    bytes: int
    folder: str


@dataclass
class Drive:
    folder: str  # the first folder of the pipeline on this drive
    need_bytes: int
    free_bytes: int

    @property
    def fits(self) -> bool:
        return self.need_bytes <= self.free_bytes


@dataclass
class DiskForecast:
    items: list[DiskItem] = field(default_factory=list)
    drives: list[Drive] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return all(drive.fits for drive in self.drives)

    def sentences(self) -> list[str]:
        out = []
        for drive in self.drives:
            parts = ", ".join(f"{item.label} {gigabytes(item.bytes)}" for item in self.items
                              if same_drive(item.folder, drive.folder))
            head = (f"Disk at {drive.folder}: the whole pipeline needs about {gigabytes(drive.need_bytes)} "
                    f"({parts})")
            if drive.fits:
                out.append(f"{head}; {gigabytes(drive.free_bytes)} are free.")
            else:
                out.append(f"{head}, but only {gigabytes(drive.free_bytes)} are free: free about "
                           f"{gigabytes(drive.need_bytes - drive.free_bytes)} or choose fewer export types.")
        return out

    def to_dict(self) -> dict:
        return {"items": [asdict(i) for i in self.items],
                "drives": [{**asdict(d), "fits": d.fits} for d in self.drives], "fits": self.fits}


def gigabytes(count: int) -> str:
    return f"{count / 1e9:.1f} GB" if count >= 1e8 else f"{count / 1e6:.0f} MB"


def existing(folder: Path) -> Path:
    folder = Path(folder).resolve()
    while not folder.exists():
        folder = folder.parent
    return folder


def same_drive(a: str, b: str) -> bool:
    return os.stat(existing(Path(a))).st_dev == os.stat(existing(Path(b))).st_dev


def forecast_disk(project, config: dict, run_folder: Path | None = None, export_folder: Path | None = None,
                  free: dict[str, int] | None = None) -> DiskForecast:
    """What a run of `project` on the model described by `config` will write, drive by drive. `free` maps a
    folder to free bytes in place of measuring (a test, or a disk known to fill)."""
    from studio.export.quantize import BITS_PER_WEIGHT
    from studio.plan import estimate
    from studio.train.runs import runs_root

    est = estimate(config, project)
    total, trained = est.params_total, est.params_trainable
    full = project.method.method == "full"
    run_folder = Path(run_folder or runs_root(project))
    export_folder = Path(export_folder or (project.resolve(project.export.output_dir) if project.export.output_dir
                                           else run_folder / "export"))
    weights = total * 2 if full else trained * 4  # full: 16-bit; adapters are kept in fp32
    optimizer = trained * OPTIMIZER_BYTES.get(project.train.optimizer, 8)
    checkpoints = CHECKPOINTS_AT_PEAK * (weights + optimizer)
    items = [DiskItem(f"{CHECKPOINTS_AT_PEAK} checkpoints", checkpoints, str(run_folder)),
             DiskItem("the fine-tuned model" if full else "the adapter", weights, str(run_folder)),
             DiskItem("the merged 16-bit model", total * 2, str(run_folder))]
    quants = list(dict.fromkeys(project.export.quant))
    if not any(q in ("f16", "bf16") for q in quants):
        items.append(DiskItem("the 16-bit GGUF (deleted after quantizing)", total * 2, str(export_folder)))
    items += [DiskItem(q.upper(), int(total * BITS_PER_WEIGHT[q] / 8), str(export_folder)) for q in quants]

    forecast = DiskForecast(items)
    for item in items:
        drive = next((d for d in forecast.drives if same_drive(d.folder, item.folder)), None)
        if drive is None:
            measured = (free or {}).get(item.folder)
            drive = Drive(item.folder, MARGIN_BYTES,
                          measured if measured is not None else shutil.disk_usage(existing(Path(item.folder))).free)
            forecast.drives.append(drive)
        drive.need_bytes += item.bytes
    return forecast


@lru_cache(maxsize=8)
def _measured_speed(events_file: Path, stamp: int):
    from studio.train.events import read_events, speed_forecast

    return speed_forecast(read_events(events_file))


def duration_sentence(project) -> str | None:
    """How long training takes at the speed the project's latest run measured (None before any run has
    timed two steps). Steps: the project's max_steps, else as many as that run had. Read once per change of
    that run's events, so a page may ask on every edit."""
    from studio.train.events import duration
    from studio.train.runs import EVENTS_FILE, latest_run

    run = latest_run(project)
    events_file = run / EVENTS_FILE if run else None
    if events_file is None or not events_file.is_file():
        return None
    forecast = _measured_speed(events_file, events_file.stat().st_mtime_ns)
    if forecast is None:
        return None
    steps = project.train.max_steps or forecast.total_steps
    return (f"Time: about {duration(forecast.seconds_per_step * steps)} for {steps} steps, at the "
            f"{forecast.seconds_per_step:.1f} s a step that run {run.name} measured (same computer and settings).")
