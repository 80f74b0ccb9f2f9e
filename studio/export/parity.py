"""The parity check: does each GGUF, run by llama.cpp, behave like the merged model in transformers?

On a few hundred held-out tokens (the run's eval split, else a shipped sample) it compares tokenization (on
plain and chat-formatted text), the next-token distribution at every position (top-1 agreement, mean KL
divergence, perplexity ratio) and the greedy continuation of a few prompts. Both models see the very same
token ids, so a tokenizer mismatch cannot hide a weight problem or the other way round.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from studio.data.prepare import with_system
from studio.errors import Cancelled
from studio.paths import RESOURCES
from studio.vocabulary import QUANT_TYPES

TOKEN_BUDGET = 384  # positions compared per file: enough for a stable top-1 rate, seconds on a CPU
MAX_SEQUENCE = 128
GREEDY_PROMPTS, GREEDY_TOKENS = 2, 24
SAMPLES = [RESOURCES / "samples" / "pirate_chat.jsonl", RESOURCES / "samples" / "lighthouse_notes.txt"]
# Text that trips pre-tokenizers: digits, spaces, code, accents, emoji, CJK, apostrophes. Reported, not
# failed: transformers' SentencePiece conversion folds leading spaces that SentencePiece itself (and llama.cpp,
# which follows it) keeps, so such text can differ on a faithful export.
TRICKY = ["In 2024 there were 366 days; pi is 3.14159 and 1,000,000 > 999999.",
          "  two leading spaces, a\ttab and\nnew lines\n\n", "def f(x):\n    return x**2  # squared",
          "émoji 🤖 ünïcödé 日本語 Привет", "don't won't I'm we'll they've"]


def target(quant: str) -> str | None:
    """The quality target the project holds itself to on the embedded default model (reported beside each
    file): 16-bit files must match, Q8_0 must keep its mean KL under the table's target."""
    facts = QUANT_TYPES[quant]
    if facts.sixteen_bit:
        return f"top-1 >= {facts.top1_floor:.0%} and perplexity within 1%"
    return f"mean KL < {facts.target_kl}" if facts.target_kl is not None else None


def rule_for(quant: str) -> tuple[str, Callable[[dict], bool]]:
    """(the rule in words, the test) that decides whether a file is flagged to the user as not working.
    16-bit must match. Quantized types lose real information, so they pass when the most likely next token is
    mostly unchanged (llama.cpp measures 92% for Q4_K_M on an 8B model; small models lose more) or when the
    whole distribution barely moved (mean KL: a model whose top choices are near ties flips them without being
    damaged). A broken file fails both. Q8_0 is held to the tightest rule of these: its KL target (target())
    is reported separately, because on a 576-wide model llama.cpp's CPU kernels, which also round each
    matmul's input to 8 bits, spend most of it (bench/results/q8_0_breakdown.json): a user should not see a
    standard Q8_0 flagged as broken while a Q6_K with three times its KL passes."""
    facts = QUANT_TYPES[quant]
    floor, kl = facts.top1_floor, facts.max_kl
    if facts.sixteen_bit:
        return target(quant), lambda m: m["top1"] >= floor and abs(m["ppl_ratio"] - 1) <= 0.01
    return f"top-1 >= {floor:.0%} or mean KL < {kl}", lambda m: m["top1"] >= floor or m["mean_kl"] < kl


def meets_target(quant: str, metrics: dict) -> bool | None:
    facts = QUANT_TYPES[quant]
    if facts.sixteen_bit:
        return rule_for(quant)[1](metrics)
    if facts.target_kl is not None:
        return metrics["mean_kl"] < facts.target_kl
    return None


def held_out_rows(run_dir: Path) -> tuple[list, str]:
    """(rows of the run's held-out data, where they came from); the shipped samples if there are none."""
    from studio.data.inspect import scan
    from studio.data.prepare import read_split
    from studio.train.runs import load_run_project

    project = load_run_project(run_dir)
    settings = project.data
    rows, origin = [], ""
    try:
        if settings.train_file:
            rows = read_split(project)[1]
            origin = (f"the eval file {Path(settings.eval_file).name}" if settings.eval_file
                      else f"the held-out split of {Path(settings.train_file).name}")
    except Exception:  # the data moved or cannot be read any more: the shipped samples still tell the truth
        rows = []
    if not rows:
        rows = [r for path in SAMPLES for r, _ in scan(path)[2] if r]
        origin = "the shipped sample texts"
    return rows, origin


def render_row(tokenizer, row, system_prompt: str = "") -> str:
    """The row as the model saw it in training: plain text, or the conversation in its chat template."""
    if row.text is not None:
        return row.text
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(with_system(row.messages, system_prompt), tokenize=False)
    return "\n\n".join(m["content"] for m in row.messages)


def token_sequences(tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids of held-out texts, about TOKEN_BUDGET in all, tokenized as training did (the chat template
    writes any BOS itself)."""
    sequences, total = [], 0
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][:MAX_SEQUENCE]
        if len(ids) > 1:
            sequences.append(ids)
            total += len(ids)
        if total >= TOKEN_BUDGET:
            break
    return sequences


def greedy_prompts(tokenizer, rows, system_prompt: str) -> list[list[int]]:
    """The first user turns of held-out chats, ready for an answer; for text data, openings of texts."""
    prompts = []
    for row in rows:
        if row.messages and getattr(tokenizer, "chat_template", None):
            turn = with_system([m for m in row.messages if m["role"] != "assistant"][:2], system_prompt)
            prompts.append(tokenizer.apply_chat_template(turn, add_generation_prompt=True, tokenize=False))
        elif row.text:
            prompts.append(tokenizer.decode(tokenizer(row.text, add_special_tokens=False)["input_ids"][:16]))
        if len(prompts) == GREEDY_PROMPTS:
            break
    return [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]


def tokenization_mismatches(tokenizer, llm, texts: list[str], bos: bool = True) -> list[str]:
    """The texts (shortened) that llama.cpp tokenizes differently from transformers."""
    bad = []
    for text in texts:
        if tokenizer(text, add_special_tokens=False)["input_ids"] != llm.tokenize(text.encode(), add_bos=False,
                                                                                  special=True):
            bad.append(text[:40])
    # Whether each side puts a BOS in front of a prompt must agree too.
    if bos and tokenizer("Hello")["input_ids"] != llm.tokenize(b"Hello", add_bos=True, special=True):
        bad.append("(the BOS token added before a prompt)")
    return bad


def compare(reference: list, candidate: list, sequences: list[list[int]]) -> dict:
    """Top-1 agreement, mean KL(reference || candidate) and perplexity ratio over every predicted position."""
    import numpy as np

    agree, kl, nll_ref, nll_cand, count = 0, 0.0, 0.0, 0.0, 0
    for ref, cand, ids in zip(reference, candidate, sequences):
        ref_log, cand_log = log_softmax(ref[:-1]), log_softmax(cand[:-1])
        targets = np.asarray(ids[1:])
        rows = np.arange(len(targets))
        agree += int((ref_log.argmax(-1) == cand_log.argmax(-1)).sum())
        kl += float((np.exp(ref_log) * (ref_log - cand_log)).sum())
        nll_ref -= float(ref_log[rows, targets].sum())
        nll_cand -= float(cand_log[rows, targets].sum())
        count += len(targets)
    return {"positions": count, "top1": agree / count, "mean_kl": kl / count,
            "ppl_ratio": float(np.exp((nll_cand - nll_ref) / count)), "ppl_reference": float(np.exp(nll_ref / count)),
            "ppl": float(np.exp(nll_cand / count))}


def log_softmax(logits):
    import numpy as np

    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def reference_model(model_dir: Path, trust_remote_code: bool = False):
    """The merged model in transformers: float32 on the CPU when it fits comfortably (exact for its bf16
    weights), else its 16-bit type, on the GPU when there is one."""
    import torch
    from transformers import AutoModelForCausalLM

    from studio.export.preflight import parameter_count

    small = parameter_count(model_dir) * 4 <= 8e9
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float32 if small or device == "cpu" else torch.bfloat16
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype, trust_remote_code=trust_remote_code
                                                 ).to(device).eval()
    return model, device


def reference_outputs(model, device: str, tokenizer, sequences, prompts, done=None) -> tuple[list, list[str]]:
    """`done(n)` is told after each text and each prompt (n: how many of them are finished)."""
    import torch

    done = done or (lambda n: None)
    with torch.inference_mode():
        logits = []
        for ids in sequences:
            logits.append(model(torch.tensor([ids], device=device)).logits[0].float().cpu().numpy())
            done(len(logits))
        replies = []
        for ids in prompts:
            out = model.generate(torch.tensor([ids], device=device), max_new_tokens=GREEDY_TOKENS, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
            replies.append(tokenizer.decode(out[0, len(ids):], skip_special_tokens=True))
            done(len(logits) + len(replies))
    return logits, replies


def gguf_outputs(llm, tokenizer, sequences, prompts, done=None) -> tuple[list, list[str]]:
    import numpy as np

    done = done or (lambda n: None)
    logits = []
    for ids in sequences:
        llm.reset()
        llm.eval(ids)
        logits.append(np.array(llm.scores[: len(ids)], dtype=np.float32))
        done(len(logits))
    replies = []
    for ids in prompts:
        llm.reset()
        out = []
        for token in llm.generate(ids, temp=0.0, top_k=1, repeat_penalty=1.0):
            if llm.token_eos() == token or len(out) >= GREEDY_TOKENS:
                break
            out.append(token)
        replies.append(tokenizer.decode(out, skip_special_tokens=True))
        done(len(logits) + len(replies))
    return logits, replies


def plain_verdict(quant: str, check: dict) -> str:
    """The check in a non-programmer's words, led by what the file is good for; the numbers stay in the
    summary (shown behind "Details"). Works on a verdict() dict, also one read back from an old report."""
    name = quant.upper()
    if check.get("top1") is None:  # the file could not be written or checked: the reason is the summary
        return f"{name}: not checked. {check.get('summary') or ''}".strip()
    share = f"{check['top1']:.0%}".replace("%", " %")
    if check.get("tokenization_ok") is False:
        return (f"{name}: reads some text differently from your trained model, so its answers can differ. "
                "Use another type (F16 is exact), or report this model.")
    if not check.get("passed"):
        return (f"{name}: answers like your trained model on only {share} of words: too damaged to use. Choose "
                "a bigger type (Q8_0 or F16).")
    if QUANT_TYPES[quant].sixteen_bit:
        return f"{name}: answers like your trained model on {share} of words: the full-quality file."
    use = "nearly identical to the full-quality file" if check["top1"] >= 0.95 else "fine for chat"
    return f"{name}: answers like your trained model on {share} of words; {use}."


def verdict(quant: str, metrics: dict, mismatches: list[str]) -> dict:
    rule, test = rule_for(quant)
    passed = not mismatches and test(metrics)
    numbers = (f"same top token as the merged model at {metrics['top1']:.1%} of {metrics['positions']} positions, "
               f"perplexity {metrics['ppl_ratio'] - 1:+.2%}, mean KL {metrics['mean_kl']:.4f}")
    if mismatches:
        summary = (f"{quant.upper()} FAILED: llama.cpp tokenizes text differently from the merged model "
                   f"(e.g. {mismatches[0]!r}); {numbers}.")
    elif passed:
        summary = f"{quant.upper()} passed ({rule}): {numbers}."
    else:
        summary = f"{quant.upper()} FAILED its check ({rule}): {numbers}."
    result = {"passed": passed, "rule": rule, "target": target(quant), "meets_target": meets_target(quant, metrics),
            "tokenization_ok": not mismatches, "tokenization_mismatches": mismatches,
            **{k: round(v, 6) if isinstance(v, float) else v for k, v in metrics.items()}, "summary": summary}
    result["plain"] = plain_verdict(quant, result)
    return result


def check_files(run_dir: Path, model_dir: Path, files: dict[str, Path], progress=None,
                cancelled: Callable[[], bool] | None = None) -> dict[str, dict]:
    """{quant: verdict} for each GGUF in `files`, against the merged model in `model_dir`."""
    from llama_cpp import Llama
    from transformers import AutoTokenizer

    from studio.train.runs import load_run_project

    say = progress or (lambda message, fraction: None)
    say("Checking the GGUF files against the merged model", 0.0)
    project = load_run_project(run_dir)
    system_prompt, trust = project.data.system_prompt, project.model.trust_remote_code
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=trust)
    rows, origin = held_out_rows(run_dir)
    texts = [render_row(tokenizer, row, system_prompt) for row in rows]
    sequences = token_sequences(tokenizer, texts)
    prompts = greedy_prompts(tokenizer, rows, system_prompt)
    # The bar moves with every text and prompt: the reference model's share first, then each file's.
    steps = len(sequences) + len(prompts)
    share = 1 / (len(files) + 1)

    def moved(what: str, part: int):
        return lambda n: say(f"{what}: {n} of {steps} texts and prompts done", min(1.0, (part + n / steps) * share))

    say("Checking the files: loading your trained model to compare with", 0.0)
    model, device = reference_model(model_dir, trust)
    reference, reference_replies = reference_outputs(model, device, tokenizer, sequences, prompts,
                                                     moved("Checking the files: your trained model's answers", 0))
    del model
    context = max(len(ids) for ids in sequences + prompts) + GREEDY_TOKENS + 8
    results = {}
    for i, (quant, path) in enumerate(files.items()):
        if cancelled and cancelled():
            raise Cancelled("The parity check was cancelled; the exported files are kept, unchecked.")
        say(f"Checking {quant.upper()} against your trained model", (i + 1) * share)
        llm = Llama(model_path=str(path), n_ctx=context, logits_all=True, n_threads=os.cpu_count() or 1,
                    n_gpu_layers=-1, verbose=False)
        try:
            mismatches = tokenization_mismatches(tokenizer, llm, texts[:8])
            edge_cases = tokenization_mismatches(tokenizer, llm, TRICKY, bos=False)
            candidate, replies = gguf_outputs(llm, tokenizer, sequences, prompts,
                                              moved(f"Checking {quant.upper()} against your trained model", i + 1))
        finally:
            llm.close()
        results[quant] = verdict(quant, compare(reference, candidate, sequences), mismatches)
        results[quant]["tokenization_edge_cases"] = edge_cases
        if edge_cases:
            results[quant]["summary"] += (f" Unusual text tokenizes differently in llama.cpp (e.g. {edge_cases[0]!r}); "
                                          "ordinary text and chat prompts are identical.")
        results[quant]["text_source"] = origin
        results[quant]["greedy"] = [{"prompt": tokenizer.decode(ids), "merged_model": ref, "gguf": got}
                                    for ids, ref, got in zip(prompts, reference_replies, replies)]
    say("Checked", 1.0)
    return results
