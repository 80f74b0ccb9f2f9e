"""An Ollama Modelfile beside the GGUF, with the chat template written out in Ollama's Go-template form.

Ollama guesses a template from the GGUF only when it is close to one of its built-ins, and otherwise falls
back to a bare prompt; so we always write TEMPLATE, plus a stop line for every end-of-turn and end-of-text
token. Ollama passes the system prompt both as .System and as a "system" entry in .Messages, so each
template prints .System once and skips system entries in the loop.
"""
from __future__ import annotations

import json
from pathlib import Path

CHATML = ('{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}'
          '{{- range .Messages }}{{- if ne .Role "system" }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n'
          '{{ end }}{{- end }}<|im_start|>assistant\n')
LLAMA3 = ('{{- if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}'
          '{{- range .Messages }}{{- if ne .Role "system" }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n'
          '{{ .Content }}<|eot_id|>{{ end }}{{- end }}<|start_header_id|>assistant<|end_header_id|>\n\n')
PHI3 = ('{{- if .System }}<|system|>\n{{ .System }}<|end|>\n{{ end }}'
        '{{- range .Messages }}{{- if ne .Role "system" }}<|{{ .Role }}|>\n{{ .Content }}<|end|>\n'
        '{{ end }}{{- end }}<|assistant|>\n')
# Gemma and Mistral have no system turn: their own templates put the system prompt in the first user turn.
GEMMA = ('{{- $first := true }}{{- range .Messages }}{{- if eq .Role "user" }}<start_of_turn>user\n'
         '{{ if and $first $.System }}{{ $.System }}\n\n{{ end }}{{ .Content }}<end_of_turn>\n{{ $first = false }}'
         '{{- else if eq .Role "assistant" }}<start_of_turn>model\n{{ .Content }}<end_of_turn>\n'
         '{{ end }}{{- end }}<start_of_turn>model\n')
MISTRAL = ('{{- $first := true }}{{- range .Messages }}{{- if eq .Role "user" }}[INST] '
           '{{ if and $first $.System }}{{ $.System }}\n\n{{ end }}{{ .Content }} [/INST]{{ $first = false }}'
           '{{- else if eq .Role "assistant" }}{{ .Content }}</s>{{ end }}{{- end }}')
PLAIN = "{{ .Prompt }}"  # a model without a chat template is a text-completion model
# (marker seen in the Jinja chat template, Go template, tokens that end a turn), in the order we test them.
FORMATS = [("<|im_start|>", CHATML, ["<|im_end|>", "<|im_start|>"]),
           ("<|start_header_id|>", LLAMA3, ["<|eot_id|>", "<|start_header_id|>"]),
           ("<start_of_turn>", GEMMA, ["<end_of_turn>", "<start_of_turn>"]),
           ("<|assistant|>", PHI3, ["<|end|>", "<|user|>"]),
           ("[INST]", MISTRAL, ["[INST]"])]
# Special tokens that end generation whatever the model's config says (the same idea as llama.cpp's list).
END_OF_GENERATION = ("<|endoftext|>", "<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end_of_text|>", "<|end|>",
                     "<end_of_turn>", "</s>")
DEFAULTS = ["PARAMETER temperature 0.7", "PARAMETER top_p 0.9", "PARAMETER repeat_penalty 1.1",
            "PARAMETER num_ctx 4096"]


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def read_chat_template(model_dir: Path) -> str:
    """The Jinja chat template: chat_template.jinja (newer transformers) or tokenizer_config.json."""
    jinja = Path(model_dir) / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    template = _json(Path(model_dir) / "tokenizer_config.json").get("chat_template") or ""
    if isinstance(template, list):  # several named templates: the default one is what chat uses
        template = next((t.get("template", "") for t in template if t.get("name") == "default"), "")
    return str(template)


def chat_format(model_dir: Path) -> tuple[str, list[str]] | None:
    """(Go template, stop tokens) for the model's chat template, or None if it is not one we know."""
    template = read_chat_template(model_dir)
    for marker, go_template, stops in FORMATS:
        if marker in template:
            return go_template, list(stops)
    return None


def end_tokens(model_dir: Path) -> list[str]:
    """The text of every token that ends generation: the tokenizer's eos, the eos ids of
    generation_config.json (chat models list their end-of-turn token there), and any special token of the
    vocabulary that llama.cpp itself treats as an end of generation."""
    model_dir = Path(model_dir)
    config = _json(model_dir / "tokenizer_config.json")
    names = {int(i): entry.get("content") for i, entry in config.get("added_tokens_decoder", {}).items()}
    names.update({entry["id"]: entry.get("content") for entry in _json(model_dir / "tokenizer.json")
                  .get("added_tokens", [])})
    eos = config.get("eos_token")
    eos = eos.get("content") if isinstance(eos, dict) else eos
    ids = _json(model_dir / "generation_config.json").get("eos_token_id")
    ids = ids if isinstance(ids, list) else [ids] if isinstance(ids, int) else []
    found = [eos] + [names.get(i) for i in ids] + [t for t in END_OF_GENERATION if t in names.values()]
    return [t for i, t in enumerate(found) if isinstance(t, str) and t and t not in found[:i]]


def render_modelfile(gguf_name: str, model_dir: Path, system_prompt: str = "") -> str:
    found = chat_format(model_dir)
    template, stops = found if found else (PLAIN, [])
    stops += [token for token in end_tokens(model_dir) if token not in stops]
    lines = [f"FROM ./{gguf_name}", "", f'TEMPLATE """{template}"""']
    if system_prompt:
        lines.append(f'SYSTEM """{system_prompt}"""')
    lines.append("")
    lines += [f"PARAMETER stop {json.dumps(token, ensure_ascii=False)}" for token in stops]
    return "\n".join(lines + DEFAULTS) + "\n"
