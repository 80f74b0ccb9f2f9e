"""Short plain-language texts shown next to each choice (the Method page's hints and tooltips), from the practice
the product is built on."""
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
    "dropout": ("Dropout switches off a random share of the adapter's inputs while training, so it cannot "
                "memorize. 0.05 is usual; 0 for very large datasets, 0.1 for very small ones."),
    "target_modules": ("Which layers get an adapter. \"all-linear\" (every linear layer of every block) learns "
                       "best; a comma-separated list such as q_proj, v_proj trains fewer values."),
    "epochs": "How many times training goes through the whole dataset. 1-3 is usual; more risks memorizing.",
    "max_steps": ("Stop after this many optimizer steps whatever the epochs say (0: use the epochs). "
                  "Handy for a quick test."),
    "lr_scheduler": ("How the learning rate changes over the run: cosine and linear slowly lower it to zero "
                     "after a short warm-up, which usually ends with a lower loss."),
    "warmup_ratio": ("The share of the run at the start during which the learning rate climbs from zero, so "
                     "the first, noisy steps do not damage the model."),
    "weight_decay": ("Pulls trained values gently towards zero. 0 is usual for LoRA; 0.01-0.1 for full "
                     "fine-tuning."),
    "precision": "The number format of training. auto picks bf16 on GPUs that support it, else fp16 or fp32.",
    "seed": "The random seed: the same seed, data and settings give the same run.",
    "devices": ("Which GPUs train: auto uses every GPU of this computer, a number that many, a list such as "
                "[0, 1] those ones. On several, each trains on its share of every batch (same result, faster); "
                "a model too big for one GPU is split across them."),
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
    """Advice on a topic of ADVICE: a setting ("rank", "cutoff", "batch", "seed", ...), "eval" or "merge"."""
    return ADVICE.get(topic, "")


# The Simple view's words for the methods a first run needs: (plain label, one line). The other methods keep
# their technical names and show in Expert view, or in Simple view when the project already uses one.
SIMPLE_METHODS = {
    "lora": ("Light (LoRA)", ("Trains a small add-on and leaves the model itself as it is: little memory, "
                              "the best first choice.")),
    "qlora": ("Smallest memory (QLoRA)", ("The same add-on on a copy of the model squeezed to 4 bits: fits a "
                                          "model about three times bigger, trains somewhat slower.")),
    "full": ("Every weight (full fine-tuning)", ("Changes the whole model: needs by far the most memory, so it "
                                                 "suits small models.")),
}

# The Simple view's words for the few training settings it shows: (label, one line under it).
SIMPLE_SETTINGS = {
    "method.rank": ("How much it can learn:", ("Higher learns more but needs more memory; 16 suits style and "
                                               "format, 32-64 new knowledge.")),
    "train.epochs": ("How long to train (passes over your data):", ("1-3 is usual; more risks learning your "
                                                                     "examples by heart.")),
    "train.max_seq_len": ("Longest example (tokens):", ("Examples longer than this are cut; a token is a piece "
                                                        "of a word. Shorter needs less memory.")),
}
