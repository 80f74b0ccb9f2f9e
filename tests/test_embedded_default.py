"""The embedded default model: converted offline from the wheel's GGUF, tokenizing exactly like llama.cpp,
and trainable and exportable end to end."""
import pytest

from studio.models import embedded_gguf_path, embedded_model_dir

TEXTS = ["Hello world", "In 2024 there were 366 days; pi is 3.14159.", " leading space", "tabs\tand\nnew lines",
         "émoji 🤖 ünïcödé 日本語", "<|im_start|>user\nHi 12<|im_end|>\n", "don't won't I'm", "x = 1_000_000"]


def test_embedded_tokenizer_matches_llama_cpp():
    from llama_cpp import Llama
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(embedded_model_dir()))
    llm = Llama(model_path=str(embedded_gguf_path()), vocab_only=True, verbose=False)
    for text in TEXTS:
        assert tokenizer(text, add_special_tokens=False)["input_ids"] == \
            llm.tokenize(text.encode(), add_bos=False, special=True), text
    assert "<|im_start|>" in tokenizer.chat_template
    llm.close()


@pytest.mark.slow
def test_embedded_model_trains_and_exports(tmp_path, sample_data):
    from studio.chat import GgufChat
    from studio.export import export_run
    from studio.project import Project, save_project
    from studio.train import run_training

    project = Project(name="smol")
    project.evaluate.after_training = project.evaluate.after_export = False  # checked in test_evaluate.py
    project.data.train_file = str(sample_data)
    project.data.eval_fraction = 0.0
    project.train.max_steps = 2
    project.train.batch_size = 2
    project.train.max_seq_len = 128
    save_project(project, tmp_path / "smol.ftproj.toml")
    run_dir, final = run_training(project)
    assert final["type"] == "done", final
    result = export_run(run_dir, ["q8_0"])
    assert set(result.files) == {"q8_0"}
    chat = GgufChat(result.files["q8_0"])
    assert chat.reply([{"role": "user", "content": "What is the capital of France?"}], max_tokens=12)
    chat.close()
