"""Rules the window shows, kept in the core so the CLI has them too: the layers, the memory fixes in one order,
run state from typed events, the suggested cutoff and the split, where an export is found again, the starter
project, preflight problem codes, Hub ids and the vocabulary tables."""
import ast
import json
from pathlib import Path

import pytest

from studio.project import Project, save_project

ROOT = Path(__file__).resolve().parent.parent


def test_the_core_imports_nothing_of_the_window():
    for path in (ROOT / "studio").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                assert name.split(".")[0] not in ("ui", "PySide6", "pyqtgraph"), f"{path}: imports {name}"


# --- memory fixes: one ordered list for the Method page and the out-of-memory explanation -----------------
def test_the_error_offers_the_planners_first_fix_and_ram_skips_gpu_only_fixes():
    from studio.plan import PlanSettings, estimate, gpu_from_numbers, verdict
    from studio.plan.fit import MEMORY_FIXES, first_fix
    from studio.train.worker import explain_oom, memory_fix

    project = Project()
    project.model.name = "Qwen/Qwen2.5-1.5B-Instruct"
    message, fix = explain_oom(project)
    assert fix == {"train.gradient_checkpointing": True} and "gradient checkpointing" in message
    from studio.catalog import config_for
    est = estimate(config_for(project.model.name), project)
    planner = verdict(est, gpu_from_numbers("small", int(est.total_bytes * 0.85))).fixes
    assert planner and planner[0].change == fix  # the Method page's first fix is the error's fix

    project.train.gradient_checkpointing = True
    project.train.batch_size = 1
    assert memory_fix(project)[1] == {"train.gradient_checkpointing": True, "train.offload_checkpoints": True}
    how, fix = memory_fix(project, gpu=False)  # RAM: offloading into it, or a 4-bit GPU format, would not help
    assert fix == {"train.max_seq_len": 512} and "512 tokens" in how
    kinds = [kind.saves_ram for kind in MEMORY_FIXES]
    assert kinds.count(False) == 3  # offload, 8-bit AdamW (bitsandbytes), QLoRA

    every_fix = PlanSettings(method="qlora", rank=4, batch_size=1, max_seq_len=256, gradient_checkpointing=True,
                             offload_checkpoints=True, lean_loss=True)
    assert first_fix(every_fix) == ("", {})
    project.method.method, project.method.rank, project.train.max_seq_len = "qlora", 4, 256
    project.train.offload_checkpoints = True
    assert "smaller model" in explain_oom(project)[0]


# --- run state ---------------------------------------------------------------------------------------------
def write_events(run_dir: Path, *events):
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "project.toml").write_text('name = "r"\n')
    with (run_dir / "events.jsonl").open("w") as handle:
        for event in events:
            handle.write(json.dumps({"time": 0, "step": 0, **event}) + "\n")


def test_a_resume_is_read_from_the_start_events_typed_field(tmp_path):
    from studio.train.state import read_run, resume_hint

    stopped = {"type": "done", "step": 4, "stopped": True, "total_steps": 10}
    write_events(tmp_path / "a", {"type": "progress", "step": 0, "total_steps": 10, "resumed": False}, stopped,
                 {"type": "progress", "step": 4, "total_steps": 10, "message": "Training started"})
    state = read_run(tmp_path / "a")  # words are not a signal: without `resumed` the stop stands
    assert state.stopped and state.summary().startswith("Stopped and saved at step 4 of 10")
    write_events(tmp_path / "b", stopped, {"type": "progress", "step": 4, "total_steps": 10, "resumed": True},
                 {"type": "progress", "step": 6, "total_steps": 10})
    state = read_run(tmp_path / "b")
    assert not state.stopped and not state.finished and state.describe() == "interrupted at step 6/10"
    assert resume_hint(tmp_path / "b") == "No checkpoint was saved yet; start a new run."
    checkpoint = tmp_path / "b" / "checkpoints" / "checkpoint-6"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text('{"global_step": 6}')  # written last: a complete checkpoint
    assert read_run(tmp_path / "b").resumable and "step 6" in resume_hint(tmp_path / "b")
    write_events(tmp_path / "c", {"type": "done", "step": 10, "total_steps": 10, "final_loss": 1.25})
    assert read_run(tmp_path / "c").summary() == "Finished 10 steps. Final loss 1.250."


def test_runs_are_listed_newest_first(tmp_path):
    from studio.train.runs import latest_run, list_runs, runs_root

    project = Project(name="listed")
    project.path = tmp_path / "listed.ftproj.toml"
    for name in ("20240101-000000", "20250101-000000", "20240601-000000"):
        write_events(runs_root(project) / name)
    (runs_root(project) / "not-a-run").mkdir()
    assert [p.name for p in list_runs(project)] == ["20250101-000000", "20240601-000000", "20240101-000000"]
    assert latest_run(project).name == "20250101-000000"


# --- data findings -----------------------------------------------------------------------------------------
def test_suggested_cutoff_and_split(tmp_path, sample_data):
    from array import array

    from studio.data.findings import Findings
    from studio.data.inspect import inspect_file
    from studio.data.stats import TokenStats

    stats = TokenStats(1024, lengths=array("q", [90, 130, 200]))
    assert stats.suggested_cutoff(1024) == 256 and stats.longer_than(128) == [130, 200]
    assert stats.suggested_cutoff(300) is None  # 256 would not save enough to be worth a button
    report = inspect_file(str(sample_data))
    findings = Findings(report, stats, None, "")
    project = Project()
    assert findings.split(project) == (108, 12)
    project.data.eval_fraction = 0.0
    assert findings.split(project) == (120, 0)


def test_data_inspect_prints_the_suggested_cutoff(tmp_path, sample_data, tiny_model_dir, capsys):
    from studio.cli import main

    assert main(["data", "inspect", str(sample_data), "--model", str(tiny_model_dir), "--max-seq-len", "4096"]) == 0
    assert "A cutoff of 128 tokens (--max-seq-len 128)" in capsys.readouterr().out  # its longest example: 128


# --- where an export is found again ------------------------------------------------------------------------
def fake_export(run_dir: Path, folder: Path, quants):
    """Files and report as export_run leaves them (written by the pipeline's own write_report)."""
    from studio.export.naming import export_targets
    from studio.export.pipeline import ExportResult, write_report
    from studio.train.runs import load_run_project

    targets = export_targets(load_run_project(run_dir), quants, folder)
    folder.mkdir(parents=True, exist_ok=True)
    for path in targets["gguf"].values():
        path.write_bytes(b"GGUF")
    result = ExportResult(files=targets["gguf"], run_dir=run_dir)
    write_report(result, run_dir, targets["report"])


def test_the_chat_gguf_is_found_where_the_export_wrote_it(tmp_path):
    from studio.chat import exported_gguf, tuned_source
    from studio.export import export_folder, last_export
    from studio.train.runs import create_run, load_run_project

    project = Project(name="tiny")
    project.export.output_dir = "my-ggufs"  # relative to the project's folder
    save_project(project, tmp_path / "tiny.ftproj.toml")
    run, other = create_run(project), create_run(project)
    folder = tmp_path / "my-ggufs"
    assert export_folder(run, project) == folder == export_folder(run, load_run_project(run))
    assert exported_gguf(run, project) is None and tuned_source(run, project) is None
    fake_export(run, folder, ["f16", "q4_k_m", "q8_0"])
    assert exported_gguf(run, project) == folder / "tiny-Q8_0.gguf"  # the closest to the trained weights
    assert tuned_source(run, project) == ("gguf", str(folder / "tiny-Q8_0.gguf"))
    assert last_export(run, project).files.keys() == {"f16", "q4_k_m", "q8_0"}
    assert exported_gguf(other, project) is None  # the shared folder's report names the first run only
    fake_export(other, folder, ["q4_k_m"])
    assert exported_gguf(other, project) == folder / "tiny-Q4_K_M.gguf" and last_export(run, project) is None


def test_preflight_problems_carry_codes(tmp_path, tiny_model_dir):
    from studio.export.preflight import preflight_export
    from studio.train.runs import create_run

    project = Project(name="tiny")
    project.model.name = str(tiny_model_dir)
    save_project(project, tmp_path / "tiny.ftproj.toml")
    run = create_run(project)
    assert preflight_export(run, ["q8_0"]).problem("no_weights")
    (run / "merged").mkdir()
    for path in tiny_model_dir.iterdir():
        (run / "merged" / path.name).symlink_to(path)
    (run / "export").mkdir()
    (run / "export" / "tiny-Q8_0.gguf").write_bytes(b"an earlier export")
    report = preflight_export(run, ["q8_0", "f16"])
    assert report.problem("files_exist") and report.existing == [run / "export" / "tiny-Q8_0.gguf"]
    assert report.parameters > 0 and report.sizes["f16"] == 2 * report.parameters


# --- the starter project, Hub ids, the vocabulary -----------------------------------------------------------
def test_the_starter_project_is_written_once_and_trains_as_it_is(tmp_path, capsys):
    from studio.cli import main
    from studio.project import load_project
    from studio.starter import starter_project

    project = starter_project(tmp_path / "first" / "mine")
    assert project.path == tmp_path / "first" / "mine.ftproj.toml" and project.name == "mine"
    assert sorted(p.name for p in (tmp_path / "first").iterdir()) == ["mine.ftproj.toml", "pirate_chat.jsonl"]
    loaded = load_project(project.path)
    assert loaded.train.epochs == 2.0 and loaded.train.max_steps == 0
    assert main(["new", str(tmp_path / "cli"), "--starter"]) == 0
    assert load_project(tmp_path / "cli.ftproj.toml").data.train_file == "pirate_chat.jsonl"


@pytest.mark.parametrize("text, hub", [("HuggingFaceTB/SmolLM2-360M-Instruct", True), ("Qwen/Qwen2.5-0.5B", True),
                                       ("./models/x", False), ("/abs/path", False), ("~/m/x", False),
                                       ("one", False), ("a/b/c", False), ("owner/", False), ("own er/x", False)])
def test_one_answer_to_is_this_a_hub_id(text, hub):
    from studio.hub import is_hub_id

    assert is_hub_id(text) is hub


def test_each_vocabulary_has_one_table():
    from studio import project, vocabulary
    from studio.export import quantize
    from studio.plan import estimator
    from studio.plan.advice import METHOD_ADVICE

    assert project.METHODS is vocabulary.METHODS and project.QUANT_TYPES is vocabulary.QUANT_TYPES
    assert estimator.METHODS is vocabulary.METHODS and estimator.OPTIMIZERS is vocabulary.OPTIMIZERS
    assert not hasattr(quantize, "BITS_PER_WEIGHT")
    assert set(METHOD_ADVICE) == set(vocabulary.METHODS)
    assert set(vocabulary.CHAT_PREFERENCE) <= set(vocabulary.QUANT_TYPES)
    assert set(vocabulary.MODELFILE_PREFERENCE) <= set(vocabulary.QUANT_TYPES)


def test_sizes_are_written_one_way():
    from studio import units

    assert units.memory(24 * 1024 ** 3) == "24.0 GB" and units.memory(1.5 * 1024 ** 3, 2) == "1.50 GB"
    assert units.file_size(1_543_000_000) == "1.54 GB" and units.file_size(144_800_000) == "145 MB"
    assert units.parameters(134_515_008) == "135M" and units.parameters(9_175_040) == "9.2M"
    assert units.parameters(1_711_376_384) == "1.7B"
