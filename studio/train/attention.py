"""Attention for packed rows on CUDA: PyTorch's variable-length flash attention, with no mask at all.

On a packed row, transformers' SDPA path builds a block-diagonal mask as large as the row squared, which
sends SDPA to a slower kernel that still computes every masked score, and keeps a mask-sized bias per layer
for the backward pass. `torch.nn.attention.varlen.varlen_attn` (PyTorch 2.10+) takes the cumulative example
lengths instead (the collator's `cu_seq_lens_q`) and computes only each example's own causal triangle.

It is registered with transformers under the name "studio_varlen". Its signature has changed between PyTorch
releases, so `varlen_available()` checks it against SDPA on a small packed input before the trainer uses it;
anything that does not match exactly keeps SDPA. Without the sequence lengths (evaluation batches that are not
packed, generation) each call falls back to SDPA.
"""
from __future__ import annotations

import inspect

NAME = "studio_varlen"


def _varlen_fn():
    from torch.nn.attention.varlen import varlen_attn
    return varlen_attn, set(inspect.signature(varlen_attn).parameters)


def varlen_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None,
                     cu_seq_lens_q=None, max_length_q=None, **kwargs):
    """transformers' attention interface: query (batch, heads, seq, dim) -> output (batch, seq, heads, dim)."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    plain = (cu_seq_lens_q is not None and attention_mask is None and dropout == 0.0
             and kwargs.get("softcap") is None and kwargs.get("sliding_window") is None
             and getattr(module, "sliding_window", None) is None
             and query.shape[2] == key.shape[2])
    if not plain:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    fn, params = _varlen_fn()
    batch, heads, seq, dim = query.shape
    q = query.transpose(1, 2).reshape(batch * seq, heads, dim)
    k = key.transpose(1, 2).reshape(batch * seq, key.shape[1], dim)
    v = value.transpose(1, 2).reshape(batch * seq, value.shape[1], dim)
    extra = {}
    if k.shape[1] != heads:
        if "enable_gqa" in params:
            extra["enable_gqa"] = True
        else:  # older releases want as many key/value heads as query heads
            k = k.repeat_interleave(heads // k.shape[1], dim=1)
            v = v.repeat_interleave(heads // v.shape[1], dim=1)
    if "window_size" in params:
        extra["window_size"] = (-1, 0)  # causal
    else:
        extra["is_causal"] = True
    if "scale" in params:
        extra["scale"] = scaling
    elif scaling is not None and abs(scaling - dim ** -0.5) > 1e-6:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    cu = cu_seq_lens_q.to(device=q.device, dtype=torch.int32)
    out = fn(q, k, v, cu, cu, int(max_length_q), int(max_length_q), **extra)
    return out.reshape(batch, seq, heads, dim), None


def register() -> None:
    from transformers import AttentionInterface
    AttentionInterface.register(NAME, varlen_attention)


def pick(project, device: str, dtype) -> str:
    """The attention implementation the trainer uses: varlen for packed rows on CUDA when it checks out."""
    if project.train.packing and varlen_available(device, dtype):
        register()
        return NAME
    return "sdpa"


def varlen_available(device: str, dtype) -> bool:
    """True when varlen attention runs here and matches SDPA on a small packed row (forward and backward)."""
    import torch
    if device != "cuda":
        return False
    try:
        _varlen_fn()
    except ImportError:
        return False
    try:
        return _matches_sdpa(dtype)
    except Exception:  # noqa: BLE001 - any failure of the optional kernel means: keep SDPA
        return False


def _matches_sdpa(dtype) -> bool:
    import torch

    class Head(torch.nn.Module):
        num_key_value_groups = 2
        is_causal = True

    gen = torch.Generator(device="cuda").manual_seed(0)
    lengths = [37, 64, 11]
    n, heads, kv, dim = sum(lengths), 4, 2, 64
    q = torch.randn(1, heads, n, dim, device="cuda", dtype=dtype, generator=gen, requires_grad=True)
    k = torch.randn(1, kv, n, dim, device="cuda", dtype=dtype, generator=gen, requires_grad=True)
    v = torch.randn(1, kv, n, dim, device="cuda", dtype=dtype, generator=gen, requires_grad=True)
    cu = torch.tensor([0, 37, 101, 112], dtype=torch.int32, device="cuda")
    out, _ = varlen_attention(Head(), q, k, v, None, scaling=dim ** -0.5, cu_seq_lens_q=cu, max_length_q=64)
    grads = torch.autograd.grad(out.float().square().sum(), (q, k, v))
    ref_parts = []
    for a, b in zip(cu[:-1].tolist(), cu[1:].tolist()):
        ref_parts.append(torch.nn.functional.scaled_dot_product_attention(
            q[:, :, a:b], k[:, :, a:b].repeat_interleave(2, 1), v[:, :, a:b].repeat_interleave(2, 1),
            is_causal=True).transpose(1, 2))
    ref = torch.cat(ref_parts, dim=1)
    ref_grads = torch.autograd.grad(ref.float().square().sum(), (q, k, v))
    close = torch.allclose(out.float(), ref.float(), atol=2e-2, rtol=2e-2)
    return close and all(torch.allclose(g.float(), r.float(), atol=5e-2, rtol=5e-2)
                         for g, r in zip(grads, ref_grads))
