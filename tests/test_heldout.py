"""The Test page's held-out examples are exactly the rows the trainer evaluated on, never trained on."""
import json

from studio.heldout import held_out_examples
from studio.project import Project
from studio.train.runs import create_run


def test_held_out_examples_are_the_eval_split(tmp_path, tiny_model_dir, sample_data):
    from transformers import AutoTokenizer

    from studio.data import prepare_dataset

    project = Project(name="heldout")
    project.model.name = str(tiny_model_dir)
    project.data.train_file = str(sample_data)
    project.data.system_prompt = "You are a pirate."
    project.path = tmp_path / "heldout.ftproj.toml"
    run_dir = create_run(project)

    examples = held_out_examples(run_dir, n=100)
    prepared = prepare_dataset(project, AutoTokenizer.from_pretrained(str(tiny_model_dir)), use_cache=False)
    assert len(examples) == len(prepared.eval) == 12  # 10% of the sample's 120 rows

    rows = [json.loads(line) for line in sample_data.read_text(encoding="utf-8").splitlines() if line.strip()]
    answers = {row["messages"][-1]["content"] for row in rows}
    for example in examples:
        assert example.messages[0] == {"role": "system", "content": "You are a pirate."}
        assert example.messages[-1]["role"] == "user" and example.question
        assert example.reference in answers and "pirate_chat.jsonl, line" in example.where
    # The trainer's eval examples start with the same conversations, in the same order.
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    for example, tokenized in zip(examples, prepared.eval):
        assert example.question in tokenizer.decode(tokenized.input_ids)

    assert len(held_out_examples(run_dir, n=3)) == 3
