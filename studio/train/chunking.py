"""Sizes of the lean loss (studio.train.loss), torch-free so the memory planner can read them."""
from __future__ import annotations

# About this many bytes of fp32 logits per chunk; the chunk's matmul output and its gradient in the model's
# dtype add about as much again (8 bytes per logit in all).
CHUNK_LOGIT_BYTES = 256 * 1024 ** 2
BYTES_PER_CHUNK_LOGIT = 8

# Families whose output is exactly `lm_head(final hidden state)`, optionally soft-capped with tanh
# (config.final_logit_softcapping). Others may scale their logits in their own ways; they keep
# transformers' loss over the full logits.
PLAIN_HEAD_FAMILIES = ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi3",
                       "smollm3", "olmo2")


def chunk_tokens(vocab: int) -> int:
    """Positions per chunk for this vocabulary size."""
    return max(16, CHUNK_LOGIT_BYTES // (4 * vocab))
