"""Talking to a model: a GGUF through llama.cpp (what users will run), or a model folder with an optional
adapter through transformers (to test a run before it is exported)."""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Iterator

from studio.errors import ModelError


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


def trained_method(adapter_dir: Path) -> str:
    """The method of the run an adapter folder belongs to (its run folder's frozen project); "lora" for an
    adapter found anywhere else, which is loaded on the 16-bit base."""
    from studio.train.runs import PROJECT_FILE, load_run_project

    run_dir = Path(adapter_dir).parent
    return load_run_project(run_dir).method.method if (run_dir / PROJECT_FILE).is_file() else "lora"
