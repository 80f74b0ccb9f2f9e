"""Talking to a model: a GGUF through llama.cpp (what users will run), or a model folder with an optional
adapter through transformers (to test a run before it is exported)."""
from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Iterator, NamedTuple

from studio.errors import ModelError
from studio.vocabulary import CHAT_PREFERENCE, MODELFILE_PREFERENCE


class GgufChat:
    def __init__(self, gguf_path: Path, n_ctx: int = 2048):
        from llama_cpp import Llama

        gguf_path = Path(gguf_path)
        if not gguf_path.is_file():
            raise ModelError(f"The GGUF file {gguf_path} does not exist.")
        try:
            self.llm = Llama(model_path=str(gguf_path), n_ctx=n_ctx, n_threads=os.cpu_count() or 1,
                             n_gpu_layers=-1, verbose=False)
        except ValueError as exc:
            raise ModelError(f"llama.cpp could not load {gguf_path.name}: {exc}") from None

    def stream(self, messages: list[dict], max_tokens: int = 200, temperature: float = 0.0) -> Iterator[str]:
        for chunk in self.llm.create_chat_completion(messages=messages, max_tokens=max_tokens,
                                                     temperature=temperature, stream=True):
            piece = chunk["choices"][0]["delta"].get("content")
            if piece:
                yield piece

    def reply(self, messages: list[dict], **kw) -> str:
        return "".join(self.stream(messages, **kw)).strip()

    def close(self) -> None:
        self.llm.close()


class HfChat:
    """A base model folder, optionally with a LoRA adapter, generating with transformers. An adapter from a
    QLoRA or 8-bit LoRA run answers on the base loaded as the run trained it (4-bit or 8-bit): what it learned
    against, and what fits the GPU it was trained on, where the 16-bit base may not."""

    def __init__(self, model_dir: Path, adapter_dir: Path | None = None, method: str | None = None,
                 trust_remote_code: bool = False):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from studio.train.worker import base_loading

        device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        if adapter_dir is not None and method is None:
            method = trained_method(Path(adapter_dir))
        # trust_remote_code is always explicit: transformers would otherwise ask on a stdin nobody sees
        self.tokenizer = AutoTokenizer.from_pretrained(str(adapter_dir or model_dir),
                                                       trust_remote_code=trust_remote_code)
        loading = base_loading(method if adapter_dir is not None else "lora", device, dtype,
                               trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), **loading)
        if "device_map" not in loading:
            model = model.to(device)
        if adapter_dir is not None:
            from peft import PeftModel
            model = PeftModel.from_pretrained(model, str(adapter_dir))
        self.model = model.eval()
        self.device = device

    def stream(self, messages: list[dict], max_tokens: int = 200, temperature: float = 0.0) -> Iterator[str]:
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        stop = threading.Event()

        class StopWhenAsked(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return stop.is_set()

        prompt = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                    return_dict=True).to(self.device)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs = dict(**prompt, max_new_tokens=max_tokens, streamer=streamer, do_sample=temperature > 0,
                      pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
                      stopping_criteria=StoppingCriteriaList([StopWhenAsked()]))
        if temperature > 0:
            kwargs["temperature"] = temperature
        thread = threading.Thread(target=self.model.generate, kwargs=kwargs, daemon=True)
        thread.start()
        try:
            yield from streamer
        finally:  # also when the caller stops reading: generation ends at the next token, not 200 tokens later
            stop.set()
            thread.join()

    def reply(self, messages: list[dict], **kw) -> str:
        return "".join(self.stream(messages, **kw)).strip()


def exported_files(run_dir: Path, project=None) -> tuple[dict[str, Path], dict[str, str]]:
    """The run's exported GGUF files by type, and the types whose check failed, found where its export wrote
    them (studio.export.export_folder: the project's [export] output_dir when set). In a folder that other runs
    export into too, only the files its export report lists for this run count."""
    from studio.export import export_folder, last_export

    folder, export = export_folder(run_dir, project), last_export(run_dir, project)
    if export is not None:
        return export.files, export.failed
    if folder == Path(run_dir).resolve() / "export":  # the run's own folder: whatever GGUF is there
        return {f.stem.rsplit("-", 1)[-1].lower(): f for f in sorted(folder.glob("*.gguf"))}, {}
    return {}, {}


def exported_gguf(run_dir: Path, project=None) -> Path | None:
    """The run's exported GGUF to chat with: the type closest to the trained weights first."""
    files, _ = exported_files(run_dir, project)
    quant = next((q for q in CHAT_PREFERENCE if q in files), None)
    return files[quant] if quant else next(iter(files.values()), None)


def shipped_gguf(run_dir: Path, project=None) -> Path | None:
    """The GGUF users will run: the one the export's Ollama Modelfile points at (the first of
    MODELFILE_PREFERENCE that passed its check), else any file the export wrote."""
    files, failed = exported_files(run_dir, project)
    quant = next((q for q in MODELFILE_PREFERENCE if q in files and q not in failed), None)
    return files[quant] if quant else next(iter(files.values()), None)


def tuned_source(run_dir: Path | None, project=None) -> tuple[str, str] | None:
    """("gguf"|"hf", what to load) for the fine-tuned side: the exported GGUF (what users will run), else the
    trained weights; None when the run has none."""
    from studio.train.runs import trained_weights_dir

    if run_dir is None:
        return None
    gguf = exported_gguf(run_dir, project)
    if gguf:
        return "gguf", str(gguf)
    weights = trained_weights_dir(run_dir)
    return ("hf", str(weights)) if weights else None


def load_chat(kind: str, what: str, base_name: str):
    """A chat object: a GGUF in llama.cpp, an adapter on its base, a whole model folder (full fine-tune or base)."""
    from studio.models import resolve_model

    if kind == "gguf":
        return GgufChat(Path(what))
    folder = Path(what)
    try:
        if (folder / "adapter_config.json").is_file():
            return HfChat(resolve_model(base_name), folder)
        return HfChat(folder)
    except OSError:  # transformers' and the Hub's "file not found" errors (LocalEntryNotFoundError...) are OSErrors
        raise ModelError(f"The model in {folder} could not be loaded: a file it needs is missing, and the Hugging "
                         "Face Hub could not be reached to fetch it. Connect to the internet once, or train or "
                         "choose the model again.") from None


def trained_method(adapter_dir: Path) -> str:
    """The method of the run an adapter folder belongs to (its run folder's frozen project); "lora" for an
    adapter found anywhere else, which is loaded on the 16-bit base."""
    from studio.train.runs import PROJECT_FILE, load_run_project

    run_dir = Path(adapter_dir).parent
    return load_run_project(run_dir).method.method if (run_dir / PROJECT_FILE).is_file() else "lora"


# --- an example as a conversation (the Data page's Simple view), not as template markers -----------------

# A speaker's header in the chat templates the app knows (ChatML, Llama 3, Gemma), and the markers that carry
# no words (turn ends, begin/end of text). Everything else is what someone said.
TURN_HEADER = re.compile(r"<\|im_start\|>(\w+)\n|<\|start_header_id\|>(\w+)<\|end_header_id\|>\n*|"
                         r"<start_of_turn>(\w+)\n")
MARKER = re.compile(r"<\|[^|<>\s]+\|>|</?s>|<bos>|<eos>|<end_of_turn>")
SPEAKERS = {"system": "System", "user": "You", "assistant": "Model", "model": "Model"}


class Turn(NamedTuple):
    speaker: str  # "System", "You", "Model" (or the template's own name for another role); "" for plain text
    spans: list  # Piece(text, trained, truncated), the turn's words without template markers


def conversation_turns(pieces) -> list[Turn]:
    """The rendered example (pieces from studio.data.highlight) as speaker turns, with the template's markers
    removed and each stretch still marked trained / cut off; plain text (no headers) is one turn with no
    speaker."""
    from studio.data.tokenize import Piece

    text = "".join(p.text for p in pieces)
    flags = [(p.trained, p.truncated) for p in pieces for _ in p.text]
    keep = [True] * len(text)
    for match in list(TURN_HEADER.finditer(text)) + list(MARKER.finditer(text)):
        keep[match.start():match.end()] = [False] * (match.end() - match.start())
    starts = [(m.start(), SPEAKERS.get(role := next(g for g in m.groups() if g), role.capitalize()))
              for m in TURN_HEADER.finditer(text)] or [(0, "")]
    if starts[0][0] > 0 and text[:starts[0][0]].strip() and MARKER.sub("", text[:starts[0][0]]).strip():
        starts.insert(0, (0, ""))
    turns = []
    for i, (start, speaker) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else len(text)
        spans: list = []
        for at in range(start, end):
            if not keep[at]:
                continue
            flag = flags[at]
            if spans and (spans[-1].trained, spans[-1].truncated) == flag:
                spans[-1] = Piece(spans[-1].text + text[at], *flag)
            else:
                spans.append(Piece(text[at], *flag))
        while spans and not spans[-1].text.strip():  # the newline after a turn's end marker
            spans.pop()
        if spans:
            spans[-1] = spans[-1]._replace(text=spans[-1].text.rstrip())
            turns.append(Turn(speaker, spans))
    return turns


def template_default_instruction(base_name: str) -> str:
    """The instruction the model's chat template adds when the project sets none (SmolLM2's "You are a
    helpful AI assistant named SmolLM..."), or ""."""
    from studio.export.modelfile import default_system_prompt
    from studio.models import resolve_model

    return default_system_prompt(resolve_model(base_name))
