"""Short plain-language texts the GUI shows next to each choice, from the practice the product is built on."""
from __future__ import annotations

from studio.vocabulary import METHODS

METHOD_ADVICE = {name: method.advice for name, method in METHODS.items()}  # the method table's own words

ADVICE = {
    "rank": ("Rank is how much the adapter can learn. 8-16 is enough for style and format; 32-64 for new "
             "knowledge or a new language. If LoRA underfits, raise the rank before giving up on LoRA."),
    "alpha": "Alpha scales the adapter's effect. Keep it about 2x the rank (rank 16, alpha 32).",
    "learning_rate": ("LoRA and QLoRA: 1e-4 to 3e-4 (2e-4 is a safe start). Full fine-tuning: 10x lower, "
                      "1e-5 to 5e-5. If the loss jumps or becomes NaN, halve it."),
    "cutoff": ("Cutoff (maximum tokens per example) is what drives activation memory. Set it just above your "
               "longest typical example; longer examples are cut at the end."),
    "batch": ("Batch size is examples per step on the GPU; gradient accumulation adds steps before each "
              "update. Their product is the effective batch: 8-32 is usual. Lower the batch and raise "
              "accumulation to save memory without changing the result. With packing, a step holds up to "
              "batch size x cutoff tokens, so it fits more short examples."),
    "gradient_checkpointing": ("Gradient checkpointing keeps only each layer's input and recomputes the rest "
                               "during the backward pass: much less activation memory, about 30% slower."),
    "offload_checkpoints": ("Offloading checkpoints keeps the layer inputs that checkpointing saves in CPU memory "
                            "instead of on the GPU: a little slower, and frees memory that grows with long "
                            "sequences and deep models."),
    "packing": ("Packing puts several examples back to back in one row, up to batch size x cutoff tokens, so "
                "no time or memory goes to padding; examples still never see each other. Keep it on."),
    "lean_loss": ("The chunked loss computes the output layer a slice of tokens at a time, so the huge "
                  "logits of a large vocabulary never sit in memory all at once. Same result; keep it on."),
    "optimizer": ("AdamW keeps two moments per trainable value; 8-bit AdamW stores them in 8 bits with about "
                  "the same quality; paged optimizers can spill their state to CPU RAM instead of crashing."),
    "eval": ("Keep an evaluation split (about 10%) and watch its loss: when it rises while the training loss "
             "falls, the model is memorizing. Test general questions too: fine-tuning can make a model forget."),
    "merge": "Merge the adapter into the 16-bit base model, never into a 4-bit one, before exporting a GGUF.",
}


def method_advice(method: str) -> str:
    return METHOD_ADVICE.get(method, f"Unknown method {method!r}.")


def advice(topic: str) -> str:
    """Advice for "rank", "alpha", "learning_rate", "cutoff", "batch", "gradient_checkpointing",
    "offload_checkpoints", "packing", "lean_loss", "optimizer", "eval" or "merge"."""
    return ADVICE.get(topic, "")
