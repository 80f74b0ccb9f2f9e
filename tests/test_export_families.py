"""Export tiny models of two families with both tokenizer kinds through the real converter and quantizer, load
them in llama.cpp (llama-cpp-python) and hold them to transformers: same tokens, same logits within tolerance.

- qwen3 architecture with a byte-level BPE tokenizer (SmolLM2's, whose pre-tokenizer llama.cpp recognises);
- llama architecture with a SentencePiece tokenizer.model trained here on the shipped sample texts.
(llama with the BPE tokenizer is the tiny model of test_pipeline.py.)

qwen2 is different: transformers 5 always gives a qwen2 model Qwen's own pre-tokenizer, so only a real Qwen
vocabulary hashes to a pre-tokenizer llama.cpp knows; with any other vocabulary the preflight must refuse,
and the converter itself must agree.
"""
import io
import json
from pathlib import Path

import numpy as np
import pytest

from studio.export import export_run
from studio.project import Project, save_project
from studio.train.runs import create_run

SAMPLES = Path(__file__).resolve().parent.parent / "resources" / "samples"
MISTRAL_TEMPLATE = ("{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] }} "
                    "[/INST]{% else %}{{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}")
SIZES = dict(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=512, initializer_range=0.1)


def sentencepiece_tokenizer(folder: Path):
    """A Llama-style SentencePiece BPE (byte fallback, no whitespace folding) trained on the sample texts.
    legacy=True: a space prefix after special tokens too, as SentencePiece (and llama.cpp) do."""
    import sentencepiece as spm
    from transformers import AutoTokenizer

    lines = [line for path in sorted(SAMPLES.iterdir()) if path.suffix in (".jsonl", ".txt", ".csv")
             for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=model, vocab_size=600,
                                   model_type="bpe", byte_fallback=True, character_coverage=1.0, split_digits=True,
                                   normalization_rule_name="identity", remove_extra_whitespaces=False,
                                   unk_id=0, bos_id=1, eos_id=2, pad_id=-1, hard_vocab_limit=False, minloglevel=2)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.model").write_bytes(model.getvalue())
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "LlamaTokenizer", "add_bos_token": True, "add_eos_token": False, "legacy": True,
         "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "chat_template": MISTRAL_TEMPLATE}))
    return AutoTokenizer.from_pretrained(str(folder))


def bpe_tokenizer():
    from transformers import AutoTokenizer

    from studio.models import embedded_model_dir

    return AutoTokenizer.from_pretrained(str(embedded_model_dir()))


def run_with_model(tmp_path, family: str) -> Path:
    """A run folder whose merged model is a freshly initialised tiny model of `family`."""
    import torch
    from transformers import (LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen3Config,
                              Qwen3ForCausalLM)

    project = Project(name=f"tiny-{family}")
    project.evaluate.after_training = project.evaluate.after_export = False  # checked in test_evaluate.py
    project.data.train_file = str(SAMPLES / "pirate_chat.jsonl")
    save_project(project, tmp_path / "tiny.ftproj.toml")
    run = create_run(project)
    merged = run / "merged"
    if family == "llama-spm":
        tokenizer = sentencepiece_tokenizer(merged)
        config = LlamaConfig(vocab_size=len(tokenizer), tie_word_embeddings=False, **SIZES,
                             bos_token_id=1, eos_token_id=2)
        model_class = LlamaForCausalLM
    else:
        tokenizer = bpe_tokenizer()
        config_class, model_class = (Qwen3Config, Qwen3ForCausalLM) if family.startswith("qwen3") else \
            (Qwen2Config, Qwen2ForCausalLM)
        config = config_class(vocab_size=len(tokenizer), tie_word_embeddings=True, **SIZES,
                              bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    model_class(config).to(torch.bfloat16).save_pretrained(str(merged))
    if family != "llama-spm":  # the SentencePiece folder is complete; re-saving it would drop `legacy`
        tokenizer.save_pretrained(str(merged))
    return run


def direct_logits_gap(gguf: Path, merged: Path, text: str) -> float:
    """Largest |logit difference| on one text, measured here without the parity module, relative to the
    spread of the logits."""
    import torch
    from llama_cpp import Llama
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ids = AutoTokenizer.from_pretrained(str(merged))(text, add_special_tokens=False)["input_ids"]
    model = AutoModelForCausalLM.from_pretrained(str(merged), dtype=torch.float32)
    with torch.inference_mode():
        expected = model(torch.tensor([ids])).logits[0].numpy()
    llm = Llama(model_path=str(gguf), n_ctx=256, logits_all=True, verbose=False)
    llm.eval(ids)
    got = np.array(llm.scores[: len(ids)])
    llm.close()
    return float(np.abs(got - expected).max() / expected.std())


@pytest.mark.slow
@pytest.mark.parametrize("family", ["qwen3-bpe", "llama-spm"])
def test_family_exports_with_parity(tmp_path, family):
    run = run_with_model(tmp_path, family)
    result = export_run(run, ["f16", "q8_0"])

    assert not result.failed, result.failed
    for quant in ("f16", "q8_0"):
        check = result.parity[quant]
        assert check["passed"] and check["tokenization_ok"], check["summary"]
        assert check["positions"] >= 200
    assert result.parity["f16"]["top1"] >= 0.99 and result.parity["f16"]["mean_kl"] < 1e-3
    assert result.parity["q8_0"]["mean_kl"] < 0.005
    report = json.loads(result.report_path.read_text())
    assert report["parity"]["f16"]["passed"] and set(report["files"]) == {"f16", "q8_0"}
    assert direct_logits_gap(result.files["f16"], run / "merged", "Arr, the capital of Peru be Lima, 1821!") < 0.02

    modelfile = result.modelfile.read_text()
    if family == "llama-spm":
        assert "[INST]" in modelfile and 'PARAMETER stop "</s>"' in modelfile
    else:
        assert "<|im_start|>" in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile


@pytest.mark.slow
def test_qwen2_with_a_foreign_vocabulary_is_refused_and_the_converter_agrees(tmp_path):
    from studio.errors import ExportError
    from studio.export.converter import convert_to_gguf
    from studio.export.preflight import preflight_export

    run = run_with_model(tmp_path, "qwen2-bpe")
    report = preflight_export(run, ["q8_0"])
    assert any("pre-tokenizer is not in llama.cpp's table" in p for p in report.problems), report.problems
    with pytest.raises(ExportError, match="not one llama.cpp recognises"):
        convert_to_gguf(run / "merged", tmp_path / "refused.gguf")
