"""The export preflight: each refusal on a real (tiny) model folder, and nothing written when it refuses."""
import json
import shutil

import pytest

from studio.errors import ExportError
from studio.export import export_run
from studio.export.preflight import preflight_export
from studio.project import Project, save_project
from studio.train.runs import create_run


@pytest.fixture
def run_dir(tmp_path, tiny_model_dir):
    """A run whose merged model is the tiny Llama (weights linked, small files copied so tests can edit them)."""
    project = Project(name="tiny")
    project.evaluate.after_training = project.evaluate.after_export = False  # checked in test_evaluate.py
    save_project(project, tmp_path / "tiny.ftproj.toml")
    run = create_run(project)
    merged = run / "merged"
    merged.mkdir()
    for path in tiny_model_dir.iterdir():
        if path.suffix == ".safetensors":
            (merged / path.name).symlink_to(path)
        else:
            shutil.copy2(path, merged / path.name)
    return run


def edit_json(path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_a_supported_model_passes_with_sizes(run_dir):
    report = preflight_export(run_dir, ["f16", "q8_0", "q4_k_m"])
    assert report.ok, report.problems
    assert report.architecture == "LlamaForCausalLM"
    assert report.tokenizer == "BPE (pre-tokenizer smollm)"
    assert report.sizes["f16"] > report.sizes["q8_0"] > report.sizes["q4_k_m"] > 0
    # 2 bytes per parameter: the tiny Llama's parameters, read from its safetensors header.
    assert abs(report.sizes["f16"] - 2 * 13_763_840) < 2 * 1000
    assert report.needed_bytes > sum(report.sizes.values())
    assert set(report.targets) == {"f16", "q8_0", "q4_k_m"}


def test_unsupported_architecture_is_refused(run_dir):
    edit_json(run_dir / "merged" / "config.json", architectures=["TinyBrainForCausalLM"])
    report = preflight_export(run_dir, ["q8_0"])
    assert not report.ok
    assert "does not support the TinyBrainForCausalLM architecture" in report.problems[0]


def test_missing_tokenizer_is_refused(run_dir):
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (run_dir / "merged" / name).unlink()
    report = preflight_export(run_dir, ["q8_0"])
    assert any("has no tokenizer" in p and "Copy the tokenizer files" in p for p in report.problems)


def test_unrecognised_pre_tokenizer_is_refused(run_dir):
    """A BPE tokenizer trained here: its token ids hash to nothing in llama.cpp's table."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(["The lighthouse keeper wrote in the log each evening."] * 50, trainer)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (run_dir / "merged" / name).unlink()
    PreTrainedTokenizerFast(tokenizer_object=tokenizer).save_pretrained(str(run_dir / "merged"))
    report = preflight_export(run_dir, ["q8_0"])
    assert any("pre-tokenizer is not in llama.cpp's table" in p for p in report.problems)


def test_not_enough_disk_is_refused(run_dir):
    report = preflight_export(run_dir, ["f16", "q4_k_m"], free_bytes=10_000_000)
    assert any("Not enough free disk space" in p and "10 MB is free" in p for p in report.problems)


def test_existing_files_are_not_overwritten_silently(run_dir):
    target = run_dir / "export" / "tiny-Q8_0.gguf"
    target.parent.mkdir()
    target.write_bytes(b"an earlier export")
    report = preflight_export(run_dir, ["q8_0"])
    assert any("tiny-Q8_0.gguf already exists" in p and "--overwrite" in p for p in report.problems)
    assert preflight_export(run_dir, ["q8_0"], overwrite=True).ok


def test_no_trained_weights_and_unknown_type_are_refused(tmp_path, run_dir):
    shutil.rmtree(run_dir / "merged")
    assert "has no trained weights yet" in preflight_export(run_dir, ["q8_0"]).problems[0]
    assert "'q7_x' is not a GGUF type" in preflight_export(run_dir, ["q7_x"]).problems[0]


def test_missing_chat_template_is_a_warning(run_dir):
    (run_dir / "merged" / "chat_template.jinja").unlink(missing_ok=True)
    edit_json(run_dir / "merged" / "tokenizer_config.json", chat_template=None)
    report = preflight_export(run_dir, ["q8_0"])
    assert report.ok
    assert any("no chat template" in w for w in report.warnings)


def test_export_refuses_before_writing_anything(run_dir):
    edit_json(run_dir / "merged" / "config.json", architectures=["TinyBrainForCausalLM"])
    with pytest.raises(ExportError, match="nothing was written.*TinyBrainForCausalLM"):
        export_run(run_dir, ["q8_0"])
    assert not (run_dir / "export").exists()


def test_k_quant_fallback_is_announced_for_odd_widths(run_dir):
    assert not preflight_export(run_dir, ["q4_k_m"]).warnings  # width 256: real K-quants
    edit_json(run_dir / "merged" / "config.json", hidden_size=576)  # SmolLM2-135M's width
    warnings = preflight_export(run_dir, ["q4_k_m", "q8_0"]).warnings
    odd = [w for w in warnings if "Q4_K_M" in w]
    assert len(odd) == 1 and "576" in odd[0]
    # Plain words first (what it means for the file), the technical reason last.
    assert odd[0].startswith("This model's layers have a size the Q4_K_M format cannot pack")
    assert "a little bigger" in odd[0] and odd[0].index("bigger") < odd[0].index("multiple of 256")
