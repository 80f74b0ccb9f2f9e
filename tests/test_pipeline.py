"""The real pipeline on a tiny local model: train in the worker process, merge, export GGUFs with llama.cpp's
converter and quantizer, load them in llama.cpp and generate."""
import json

import pytest

from studio.chat import GgufChat
from studio.export import export_run
from studio.merge import merge_run
from studio.project import Project, save_project
from studio.train import run_training
from studio.train.events import read_events
from studio.train.runs import latest_checkpoint


def make_project(tmp_path, model, data, steps=4, **train):
    project = Project(name="tiny")
    project.evaluate.after_training = project.evaluate.after_export = False  # checked in test_evaluate.py
    project.model.name = str(model)
    project.data.train_file = str(data)
    project.train.max_steps = steps
    project.train.batch_size = 4
    project.train.max_seq_len = 128
    project.train.learning_rate = 1e-3
    for key, value in train.items():
        setattr(project.train, key, value)
    save_project(project, tmp_path / "tiny.ftproj.toml")
    return project


@pytest.mark.slow
def test_train_merge_export_chat(tmp_path, tiny_model_dir, sample_data):
    project = make_project(tmp_path, tiny_model_dir, sample_data)
    seen = []
    run_dir, final = run_training(project, on_event=seen.append)
    assert final["type"] == "done", final
    kinds = {e["type"] for e in seen}
    assert {"progress", "metrics", "eval", "checkpoint", "done"} <= kinds
    # The same stream is on disk, so a finished run can be re-plotted.
    on_disk = [e for e in read_events(run_dir / "events.jsonl")]
    assert [e["type"] for e in on_disk if e["type"] == "metrics"] == [e["type"] for e in seen if e["type"] == "metrics"]
    losses = [e["loss"] for e in on_disk if e["type"] == "metrics"]
    assert len(losses) == 4 and all(loss > 0 for loss in losses)
    assert (run_dir / "adapter" / "adapter_config.json").is_file()

    merged = merge_run(run_dir)
    assert json.loads((merged / "config.json").read_text())["model_type"] == "llama"
    result = export_run(run_dir, ["f16", "q8_0", "q4_k_m"])
    assert not result.failed
    assert set(result.files) == {"f16", "q8_0", "q4_k_m"}
    sizes = {q: p.stat().st_size for q, p in result.files.items()}
    assert sizes["f16"] > sizes["q8_0"] > sizes["q4_k_m"]
    assert not list(result.files["f16"].parent.glob(".*partial"))
    modelfile = result.modelfile.read_text()
    assert "FROM ./tiny-Q4_K_M.gguf" in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile

    # The GGUF tokenizes exactly like the merged model and answers in llama.cpp.
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(str(merged))
    chat = GgufChat(result.files["q8_0"])
    for text in ["What is the capital of Peru?", "<|im_start|>user\n12 + 30 = 42<|im_end|>\n"]:
        assert chat.llm.tokenize(text.encode(), add_bos=False, special=True) == \
            tokenizer(text, add_special_tokens=False)["input_ids"]
    reply = "".join(chat.stream([{"role": "user", "content": "Hello"}], max_tokens=8))
    assert isinstance(reply, str)
    chat.close()


@pytest.mark.slow
def test_stop_and_resume(tmp_path, tiny_model_dir, sample_data):
    from studio.train import start_training

    project = make_project(tmp_path, tiny_model_dir, sample_data, steps=40, save_steps=100)
    proc = start_training(project)
    stopped_at = None
    for event in proc.events():
        if event["type"] == "progress" and event["step"] >= 2 and stopped_at is None:
            proc.request_stop()
            stopped_at = event["step"]
        if event["type"] == "done":
            assert event["stopped"] and event["step"] < 40
    assert proc.returncode == 0
    checkpoint = latest_checkpoint(proc.run_dir)
    assert checkpoint is not None  # stop-and-save kept a checkpoint
    run_dir, final = run_training(run_dir=proc.run_dir, resume=True)
    assert final["type"] == "done" and final["step"] == 40 and not final["stopped"]
    first_resumed = next(e for e in read_events(run_dir / "events.jsonl")
                         if e["type"] == "progress" and e["step"] > 0 and e["step"] > int(checkpoint.name.split("-")[1]))
    assert first_resumed["step"] == int(checkpoint.name.split("-")[1]) + 1


def test_training_error_is_reported_in_words(tmp_path, tiny_model_dir):
    project = make_project(tmp_path, tiny_model_dir, tmp_path / "missing.jsonl", steps=1)
    run_dir, final = run_training(project)
    assert final["type"] == "error"
    assert "missing.jsonl" in final["message"]


@pytest.mark.slow
def test_a_worker_killed_for_memory_is_explained_with_a_fix(tmp_path, tiny_model_dir, sample_data, memory_cgroup):
    """Linux's out-of-memory killer ends a process with SIGKILL and no word of its own: the kernel's log says
    why, and the app explains it with the fix it can apply (a plain `kill -9` is not called that:
    test_faults.py)."""
    import signal

    from studio.train import start_training
    from studio.train.launch import unexpected_end

    project = make_project(tmp_path, tiny_model_dir, sample_data, steps=200)
    proc = start_training(project)
    (memory_cgroup / "cgroup.procs").write_text(str(proc.process.pid))
    for _ in proc.events():
        pass
    assert proc.returncode == -signal.SIGKILL
    problem = unexpected_end(proc)
    assert "ran out of memory (RAM)" in problem["message"] and "exit code" not in problem["message"]
    assert problem["fix"] == {"train.gradient_checkpointing": True}  # the planner's first RAM-saving fix
    assert "gradient checkpointing" in problem["message"]
    assert [e for e in read_events(proc.run_dir / "events.jsonl") if e["type"] == "error"][-1]["kind"] == \
        "out_of_memory"
