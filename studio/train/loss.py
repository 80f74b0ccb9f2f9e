"""A causal-LM loss that never holds the whole batch's logits.

transformers computes `lm_head(hidden)` for every position and upcasts it to fp32 for the loss: with a
150k-token vocabulary that is 0.6 MB per token, several GB per batch, usually the largest single item in
training memory. Here the head and the cross-entropy run over chunks of positions, and each chunk's gradient
is computed during the forward pass (softmax minus one-hot, times the head), so only one chunk's logits exist
at a time and nothing logits-sized is kept for the backward pass. Only positions with a target are computed
at all: with assistant-only labels, the prompt's logits are never made.

The numerics follow transformers: the head's matmul runs in the model's dtype, the log-softmax in fp32.
Liger-kernel's fused linear cross-entropy does the same in Triton; it needs a CUDA GPU and Triton, so the
studio keeps this pure-torch version, which runs everywhere and is tested against plain cross-entropy.
"""
from __future__ import annotations

import torch

from studio.data.tokenize import IGNORE
from studio.train.chunking import PLAIN_HEAD_FAMILIES, chunk_tokens


class _ChunkedLinearCrossEntropy(torch.autograd.Function):
    """Summed cross-entropy of `hidden @ weight.T` against `targets`, gradients computed chunk by chunk."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, chunk, softcap):
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_h = torch.empty_like(hidden) if need_h else None
        wide = torch.promote_types(weight.dtype, torch.float32)
        grad_w = torch.zeros(weight.shape, dtype=wide, device=weight.device) if need_w else None
        total = torch.zeros((), dtype=wide, device=hidden.device)
        for start in range(0, hidden.shape[0], chunk):
            end = start + chunk
            total += _chunk_loss(hidden[start:end], weight, targets[start:end], softcap,
                                 grad_h[start:end] if need_h else None, grad_w)
        ctx.save_for_backward(grad_h, grad_w)
        ctx.weight_dtype = weight.dtype
        return total

    @staticmethod
    def backward(ctx, grad_total):
        grad_h, grad_w = ctx.saved_tensors
        gh = grad_h * grad_total.to(grad_h.dtype) if grad_h is not None else None
        gw = (grad_w * grad_total).to(ctx.weight_dtype) if grad_w is not None else None
        return gh, gw, None, None, None


def _chunk_loss(h, weight, y, softcap, grad_h, grad_w):
    """One chunk's summed loss; writes its gradients into grad_h (this chunk's rows) and adds into grad_w.
    A function of its own so that the chunk's logits are freed on return, before the next chunk's exist."""
    logits = h @ weight.T
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # 16-bit -> fp32
    if softcap:
        squashed = torch.tanh(logits / softcap)
        logits = squashed * softcap
    lse = torch.logsumexp(logits, dim=-1)
    loss = (lse - logits.gather(1, y[:, None]).squeeze(1)).sum()
    if grad_h is None and grad_w is None:
        return loss
    # d(lse - logit_y)/d logits = softmax - one_hot(y); reuse the logits' memory for it
    grad = logits.sub_(lse[:, None]).exp_()
    grad[torch.arange(len(y), device=y.device), y] -= 1
    if softcap:
        grad *= 1 - squashed * squashed
    grad = grad.to(weight.dtype)
    if grad_h is not None:
        grad_h.copy_(grad @ weight)
    if grad_w is not None:
        grad_w += grad.T @ h
    return loss


def linear_cross_entropy_sum(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor,
                             softcap: float | None = None, chunk: int | None = None) -> tuple[torch.Tensor, int]:
    """(summed loss, number of targets) of a causal LM: position t of `hidden` predicts `labels` at t+1.

    hidden: (batch, seq, hidden) final hidden states; weight: (vocab, hidden) output head; labels: (batch, seq)
    with IGNORE where there is nothing to learn. Divide the sum by the targets of the whole accumulated batch.
    """
    h = hidden[:, :-1].reshape(-1, hidden.shape[-1])
    y = labels[:, 1:].reshape(-1).to(hidden.device)
    keep = (y != IGNORE).nonzero().squeeze(1)
    h, y = h.index_select(0, keep), y.index_select(0, keep)
    loss = _ChunkedLinearCrossEntropy.apply(h, weight, y, chunk or chunk_tokens(weight.shape[0]), softcap or 0.0)
    return loss, int(keep.numel())


def lean_loss_head(model) -> tuple[object, object, float | None] | None:
    """(decoder, output head, soft-cap) when the chunked loss computes exactly this model's loss; else None.

    `model` may be wrapped by peft. The head must be a plain linear layer (not adapted by LoRA).
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(base, "config", None)
    if getattr(config, "model_type", None) not in PLAIN_HEAD_FAMILIES:
        return None
    head = base.get_output_embeddings()
    if type(head) is not torch.nn.Linear or head.bias is not None:
        return None
    return base.get_decoder(), head, getattr(config, "final_logit_softcapping", None)
