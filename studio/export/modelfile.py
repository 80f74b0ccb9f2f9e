"""An Ollama Modelfile beside the GGUF, with the chat template written out in Ollama's Go-template form.

Ollama guesses a template from the GGUF only when it is close to one of its built-ins, and otherwise falls
back to a bare prompt; so we always write TEMPLATE, plus a stop line for every end-of-turn token.
"""
from __future__ import annotations

import json
from pathlib import Path

# Go templates for the chat formats we can recognise from a Jinja chat template.
CHATML = ('{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}'
          '{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}'
          '<|im_start|>assistant\n')
LLAMA3 = ('{{- if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}'
          '{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>{{ end }}'
          '<|start_header_id|>assistant<|end_header_id|>\n\n')
GEMMA = ('{{- range .Messages }}<start_of_turn>{{ if eq .Role "assistant" }}model{{ else }}{{ .Role }}{{ end }}\n'
         '{{ .Content }}<end_of_turn>\n{{ end }}<start_of_turn>model\n')
FORMATS = [("<|im_start|>", CHATML, ["<|im_end|>", "<|im_start|>"]),
           ("<|start_header_id|>", LLAMA3, ["<|eot_id|>", "<|start_header_id|>"]),
           ("<start_of_turn>", GEMMA, ["<end_of_turn>"])]


def chat_format(model_dir: Path) -> tuple[str, list[str]] | None:
    """(Go template, stop tokens) for the model's chat template, or None if it is not one we know."""
    template = ""
    jinja = model_dir / "chat_template.jinja"
    if jinja.is_file():
        template = jinja.read_text(encoding="utf-8")
    elif (model_dir / "tokenizer_config.json").is_file():
        template = str(json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
                       .get("chat_template") or "")
    for marker, go_template, stops in FORMATS:
        if marker in template:
            return go_template, stops
    return None


def eos_tokens(model_dir: Path) -> list[str]:
    config_path = model_dir / "tokenizer_config.json"
    if not config_path.is_file():
        return []
    config = json.loads(config_path.read_text(encoding="utf-8"))
    eos = config.get("eos_token")
    eos = eos.get("content") if isinstance(eos, dict) else eos
    return [eos] if isinstance(eos, str) and eos else []


def render_modelfile(gguf_name: str, model_dir: Path, system_prompt: str = "") -> str:
    found = chat_format(model_dir)
    lines = [f"FROM ./{gguf_name}", ""]
    stops: list[str] = []
    if found:
        template, stops = found
        lines.append(f'TEMPLATE """{template}"""')
    for token in eos_tokens(model_dir):
        if token not in stops:
            stops.append(token)
    if system_prompt:
        lines.append(f'SYSTEM """{system_prompt}"""')
    lines.append("")
    lines += [f'PARAMETER stop "{token}"' for token in stops]
    lines += ["PARAMETER temperature 0.7", "PARAMETER top_p 0.9", "PARAMETER repeat_penalty 1.1",
              "PARAMETER num_ctx 4096"]
    return "\n".join(lines) + "\n"
