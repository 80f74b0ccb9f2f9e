"""Short plain-language texts the GUI shows next to each choice, from the practice the product is built on."""
from __future__ import annotations

METHOD_ADVICE = {
    "full": ("Full fine-tuning changes every weight. It needs the most memory: weights, gradients and two "
             "AdamW moments for every parameter (about 16 bytes per parameter with the usual fp32 master copy, "
             "8 in the studio's pure bf16), so it suits small models. Learning rate about 1e-5 to 5e-5."),
    "lora": ("LoRA freezes the base model (2 bytes per parameter) and trains small rank-r matrices beside its "
             "linear layers. Start with rank 16, alpha 2x the rank, learning rate 1e-4 to 3e-4, all linear "
             "layers. The best first choice when the 16-bit model fits."),
    "qlora": ("QLoRA stores the frozen base in 4-bit NF4 (about 0.5 bytes per parameter) and trains LoRA "
              "matrices on top: a model about 3x bigger fits, but training is 30-50% slower. When exporting, "
              "the adapter is merged into the 16-bit base, never the 4-bit one."),
    "lora8bit": ("8-bit LoRA stores the frozen base in 8 bits (1 byte per parameter): between LoRA and QLoRA "
                 "in memory, and slower than both per step. Use it when 16-bit does not fit and 4-bit "
                 "worries you."),
    "dora": ("DoRA is LoRA that also learns each weight's magnitude. It can match full fine-tuning a little "
             "more closely at low rank, but it is slower and needs more memory than LoRA."),
}

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


# Training without an NVIDIA GPU: what each choice costs there, said before the run and in its log.
CPU_NOTES = {
    "qlora": ("No NVIDIA GPU: QLoRA runs on the CPU, where the 4-bit model is unpacked again for every layer at "
              "every step. That is slow (a few times slower than LoRA on the CPU) and saves no time: only "
              "sensible for a small model or a quick test."),
    "lora8bit": ("No NVIDIA GPU: 8-bit LoRA runs on the CPU, slowly (its 8-bit multiplications have no fast "
                 "CPU version): only sensible for a small model or a quick test."),
    "bf16": ("No NVIDIA GPU: bf16 runs on the CPU as asked, the precision GPUs train in, but most processors "
             "have no fast 16-bit arithmetic, so it is many times slower than the CPU's usual fp32."),
    "fp16": "No NVIDIA GPU: fp16 needs a GPU, so this run trains in fp32 on the CPU (same settings otherwise).",
}
CPU_METHOD_SUFFIX = "(slow without a GPU: small models or a quick test)"  # beside QLoRA / 8-bit on the Method page


def cpu_notes(method: str, precision: str) -> list[str]:
    """The plain-words notes for training this method at this precision on the CPU (none for LoRA in fp32)."""
    return [CPU_NOTES[key] for key in (method, precision) if key in CPU_NOTES]


def method_advice(method: str) -> str:
    return METHOD_ADVICE.get(method, f"Unknown method {method!r}.")


def advice(topic: str) -> str:
    """Advice for "rank", "alpha", "learning_rate", "cutoff", "batch", "gradient_checkpointing",
    "offload_checkpoints", "packing", "lean_loss", "optimizer", "eval" or "merge"."""
    return ADVICE.get(topic, "")
