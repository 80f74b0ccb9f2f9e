"""One plain sentence for each technical term the app cannot avoid, shown where the term appears (a tooltip in
Expert view, a line under it in Simple view). Pages and the CLI take the words from here, so a term is
explained the same way everywhere. Pure data."""
from __future__ import annotations

TERMS: dict[str, str] = {
    "LoRA": "trains small add-on matrices beside the model's layers instead of the whole model: far less memory.",
    "QLoRA": "LoRA on a copy of the model squeezed to 4 bits: fits a model about 3x bigger, trains a bit slower.",
    "rank": "how big LoRA's add-on matrices are: higher can learn more but needs more memory (16 is a good start).",
    "alpha": "how strongly LoRA's add-on counts; about twice the rank is usual.",
    "learning rate": "how big each training step's change is: too high and training goes wild, too low and it "
                     "learns little.",
    "epoch": "one pass over all your examples.",
    "cutoff": "the longest example, in tokens, the model sees; longer ones are cut or left out.",
    "token": "a piece of a word; models read and write text in tokens (about 4 letters of English each).",
    "batch size": "how many examples the model looks at before each change to its weights.",
    "gradient accumulation": "adds up several small batches before one change, so a big batch fits in less memory.",
    "gradient checkpointing": "recomputes some numbers instead of keeping them: less memory, about 30 % slower.",
    "loss": "how surprised the model is by your examples' answers; lower is better.",
    "eval loss": "the same measure on examples held back from training: if it rises while loss falls, the model "
                 "is memorizing instead of learning.",
    "gradient norm": "how big the latest change to the model was; sudden spikes mean training is unstable.",
    "chat template": "how a model's conversations are written out as text, with markers for who is speaking.",
    "system prompt": "an instruction placed before every conversation, like \"You are a helpful assistant\".",
    "GGUF": "the single-file model format llama.cpp, Ollama and LM Studio run.",
    "quantization": "storing the model's numbers in fewer bits: a smaller, faster file that answers almost the same.",
    "F16": "the full-quality GGUF (16 bits per number): the biggest file.",
    "Q8_0": "8 bits per number: about half the size of F16, answers nearly identically.",
    "Q4_K_M": "about 4.8 bits per number: about a third of F16's size, the usual choice for chatting.",
    "greedy": "always picking the most likely next word, so the same question gets the same answer.",
    "packing": "joins short examples into one long row so no memory is wasted on padding: faster training.",
    "optimizer": "the rule that turns each step's measurement into a change of the weights (AdamW is the usual one).",
    "NF4": "the 4-bit number format QLoRA stores the model in.",
    "VRAM": "the GPU's own memory; the whole training run must fit in it.",
}


def explain(term: str) -> str:
    """"term: plain sentence", or the term itself when it has no entry."""
    sentence = TERMS.get(term)
    return f"{term}: {sentence}" if sentence else term
