"""The export command and what surrounds a real export: cancel cleans up, a finished file survives a later
cancel, the Modelfile's stops and system prompt, LM Studio's folder layout, the Ollama message, the LoRA
adapter GGUF loaded on top of its base in llama.cpp."""
import json
import os
import shutil

import pytest

from studio.cli import main
from studio.errors import Cancelled, ExportError
from studio.export import export_run
from studio.export.adapter import export_adapter
from studio.export.handoff import register_with_ollama
from studio.export.modelfile import render_modelfile
from studio.project import Project, save_project
from studio.train.runs import create_run


def make_run(tmp_path, model_dir, system_prompt="", merged=True):
    project = Project(name="tiny")
    project.evaluate.after_training = project.evaluate.after_export = False  # checked in test_evaluate.py
    project.model.name = str(model_dir)
    project.data.system_prompt = system_prompt
    save_project(project, tmp_path / "tiny.ftproj.toml")
    run = create_run(project)
    if merged:
        (run / "merged").mkdir()
        for path in model_dir.iterdir():
            (run / "merged" / path.name).symlink_to(path)
    return run


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


@pytest.mark.slow
def test_cli_export_json_and_parity_table(tmp_path, tiny_model_dir, capsys, monkeypatch):
    run = make_run(tmp_path, tiny_model_dir)
    monkeypatch.setenv("LMSTUDIO_MODELS", str(tmp_path / "lmstudio"))
    code = main(["export", str(run), "--quant", "f16,q4_k_m", "--lmstudio", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out["failed"]
    assert set(out["files"]) == {"f16", "q4_k_m"} and out["parity"]["q4_k_m"]["passed"]
    placed = tmp_path / "lmstudio" / "fine-tune-studio" / "tiny" / "tiny-Q4_K_M.gguf"
    assert os.path.samefile(placed, out["files"]["q4_k_m"])  # a hard link: no second copy on the disk
    assert json.loads((run / "export" / "report.json").read_text())["parity"]["f16"]["passed"]

    # Again into the same folder: refused before anything is touched.
    before = (run / "export" / "tiny-F16.gguf").stat().st_mtime_ns
    assert main(["export", str(run), "--quant", "f16", "--no-check"]) == 2
    assert "already exist" in capsys.readouterr().err
    assert (run / "export" / "tiny-F16.gguf").stat().st_mtime_ns == before


@pytest.mark.slow
def test_cancel_removes_unfinished_files_and_keeps_finished_ones(tmp_path, tiny_model_dir):
    run = make_run(tmp_path, tiny_model_dir)
    with pytest.raises(Cancelled):  # cancelled while the converter writes the first file
        export_run(run, ["q8_0"], progress=lambda m, f: None, cancelled=lambda: True)
    assert leftovers(run / "export") == []  # neither the partial file nor the hidden 16-bit intermediate

    state = {"quantizing": False}
    def progress(message, fraction):
        state["quantizing"] |= message.startswith("Quantizing")
    with pytest.raises(Cancelled, match="finished ones kept: tiny-F16.gguf"):
        export_run(run, ["f16", "q8_0"], progress=progress, cancelled=lambda: state["quantizing"])
    assert leftovers(run / "export") == ["tiny-F16.gguf"]


def test_modelfile_has_every_stop_and_the_system_prompt(tiny_model_dir, tmp_path):
    text = render_modelfile("tiny-Q4_K_M.gguf", tiny_model_dir, "You are a pirate.")
    assert text.startswith("FROM ./tiny-Q4_K_M.gguf\n")
    assert '<|im_start|>{{ .Role }}' in text and 'SYSTEM """You are a pirate."""' in text
    for token in ("<|im_end|>", "<|im_start|>", "<|endoftext|>"):
        assert f'PARAMETER stop "{token}"' in text
    assert "PARAMETER temperature" in text and "PARAMETER num_ctx" in text

    plain = tmp_path / "plain"
    shutil.copytree(tiny_model_dir, plain)
    (plain / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((plain / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (plain / "tokenizer_config.json").write_text(json.dumps(config))
    assert 'TEMPLATE """{{ .Prompt }}"""' in render_modelfile("x.gguf", plain)  # a completion model


def test_missing_ollama_is_explained_not_fatal(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH without ollama on it
    message = register_with_ollama(tmp_path / "Modelfile", "tiny")
    assert "Ollama is not installed" in message and "ollama create tiny -f" in message


def test_dora_adapter_is_refused_in_words(tmp_path, tiny_model_dir):
    run = make_run(tmp_path, tiny_model_dir, merged=False)
    (run / "adapter").mkdir()
    (run / "adapter" / "adapter_config.json").write_text(json.dumps({"use_dora": True, "lora_alpha": 16, "r": 8}))
    with pytest.raises(ExportError, match="DoRA adapters have no llama.cpp adapter format"):
        export_adapter(run)


@pytest.mark.slow
def test_lora_adapter_gguf_on_its_base_matches_the_merged_model(tmp_path, tiny_model_dir):
    """The adapter GGUF applied by llama.cpp to the base GGUF gives the logits of the adapter merged in
    transformers: so users who keep the base get the model they trained."""
    import numpy as np
    import torch
    from llama_cpp import Llama
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from studio.export.converter import convert_to_gguf, install_converter

    install_converter()  # an older setup may lack convert_lora_to_gguf.py: fetched once from the same release
    run = make_run(tmp_path, tiny_model_dir, merged=False)
    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    lora = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "down_proj"],
                                           init_lora_weights=False))
    lora.save_pretrained(str(run / "adapter"))
    adapter = export_adapter(run)
    assert adapter.name == "tiny-LoRA-F16.gguf" and leftovers(run / "export") == ["tiny-LoRA-F16.gguf"]

    base_gguf = tmp_path / "base-F16.gguf"
    convert_to_gguf(tiny_model_dir, base_gguf)
    ids = AutoTokenizer.from_pretrained(str(tiny_model_dir))("Arr, the sea be wide and deep.")["input_ids"]
    with torch.inference_mode():
        expected = lora.merge_and_unload()(torch.tensor([ids])).logits[0].numpy()
    llm = Llama(model_path=str(base_gguf), lora_path=str(adapter), n_ctx=128, logits_all=True, verbose=False)
    llm.eval(ids)
    got = np.array(llm.scores[: len(ids)])
    llm.close()
    plain = Llama(model_path=str(base_gguf), n_ctx=128, logits_all=True, verbose=False)
    plain.eval(ids)
    without = np.array(plain.scores[: len(ids)])
    plain.close()
    gap, adapter_effect = np.abs(got - expected).max(), np.abs(without - expected).max()
    assert gap < 0.1 * adapter_effect, (gap, adapter_effect)  # the adapter is applied, and applied right
