"""An Ollama Modelfile beside the GGUF, with the chat template written out in Ollama's Go-template form.

Ollama guesses a template from the GGUF only when it is close to one of its built-ins, and otherwise falls
back to a bare prompt; so we always write TEMPLATE, plus a stop line for every end-of-turn and end-of-text
token. Ollama passes the system prompt both as .System and as a "system" entry in .Messages, so each
template prints .System once and skips system entries in the loop.

Training and Ollama must see the same text: a chat template that adds a default system turn when a
conversation has none (SmolLM2, Qwen) trained every example with it, so the Modelfile states it as SYSTEM.
A Modelfile has no escapes, so text that would end a quoted value early is refused rather than written.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from studio.errors import ExportError

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
# (marker seen in the Jinja chat template, Go template, tokens that end a turn, the system turn as the Jinja
# template writes it: its text is group 1), in the order we test them.
FORMATS = [("<|im_start|>", CHATML, ["<|im_end|>", "<|im_start|>"], r"<\|im_start\|>system\n(.*?)<\|im_end\|>\n"),
           ("<|start_header_id|>", LLAMA3, ["<|eot_id|>", "<|start_header_id|>"],
            r"<\|start_header_id\|>system<\|end_header_id\|>\n\n(.*?)<\|eot_id\|>"),
           ("<start_of_turn>", GEMMA, ["<end_of_turn>", "<start_of_turn>"], None),
           ("<|assistant|>", PHI3, ["<|end|>", "<|user|>"], r"<\|system\|>\n(.*?)<\|end\|>\n"),
           ("[INST]", MISTRAL, ["[INST]"], None)]
PROBE = "Fine-Tune Studio probe message"
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
    for marker, go_template, stops, _ in FORMATS:
        if marker in template:
            return go_template, list(stops)
    return None


def default_system_prompt(model_dir: Path) -> str:
    """The system turn the model's chat template writes into a conversation that has none ("You are a
    helpful AI assistant named SmolLM..."), or "" when it writes none."""
    template = read_chat_template(model_dir)
    system_turn = next((turn for marker, _, _, turn in FORMATS if marker in template), None)
    if not system_turn:
        return ""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=False)
    try:
        text = tokenizer.apply_chat_template([{"role": "user", "content": PROBE}], tokenize=False)
    except Exception:  # noqa: BLE001 - a template that cannot render a lone user turn adds no system turn
        return ""
    found = re.search(system_turn, text.split(PROBE)[0], re.DOTALL)
    return found.group(1) if found else ""


def modelfile_problem(system_prompt: str) -> str | None:
    """Why a system prompt cannot go into a Modelfile, or None. Ollama reads SYSTEM \"\"\"...\"\"\" up to the
    next three quotes with no escape, so a prompt holding them would end early and the rest would be read as
    Modelfile commands (FROM, ADAPTER, PARAMETER...)."""
    if '"""' in system_prompt:
        return ('The system prompt contains three double quotes in a row ("""), which an Ollama Modelfile cannot '
                "hold: the prompt would end there and the rest would be read as Modelfile commands. Change them "
                "(for example to “ ”) in the project's system prompt and export again.")
    return None


def safe_stop(token: str) -> bool:
    """A stop token Ollama reads back exactly from PARAMETER stop "...": no quote, no space, nothing unprintable."""
    return bool(token) and token.isprintable() and '"' not in token and not any(c.isspace() for c in token)


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
    """The Modelfile text; `system_prompt` is the project's (empty: the template's own default, if any)."""
    found = chat_format(model_dir)
    template, stops = found if found else (PLAIN, [])
    stops += [token for token in end_tokens(model_dir) if token not in stops]
    system = system_prompt or (default_system_prompt(model_dir) if found else "")
    if problem := modelfile_problem(system):
        raise ExportError(problem)
    lines = [f"FROM ./{gguf_name}", "", f'TEMPLATE """{template}"""']
    if system:
        lines.append(f'SYSTEM """{system}"""')
    lines.append("")
    lines += [f'PARAMETER stop "{token}"' for token in stops if safe_stop(token)]
    return "\n".join(lines + DEFAULTS) + "\n"
