"""Attention for packed rows on CUDA: PyTorch's variable-length flash attention, with no mask at all.

On a packed row, transformers' SDPA path builds a block-diagonal mask as large as the row squared, which
sends SDPA to a slower kernel that still computes every masked score, and keeps a mask-sized bias per layer
for the backward pass. `torch.nn.attention.varlen.varlen_attn` (PyTorch 2.10+) takes the cumulative example
lengths instead (the collator's `cu_seq_lens_q`) and computes only each example's own causal triangle.

It is registered with transformers under the name "studio_varlen". Its signature has changed between PyTorch
releases, so `varlen_available()` checks it against SDPA on a small packed input before the trainer uses it;
anything that does not match exactly keeps SDPA, and `pick` keeps SDPA for models whose attention is not plain
causal. Without the sequence lengths (batches that are not packed) a call is ordinary SDPA; a packed row the
kernel call cannot take (attention dropout, soft-capping) runs SDPA one example at a time, never across them.
"""
from __future__ import annotations

import inspect

NAME = "studio_varlen"
# Whether the varlen kernel checked out on this device (set by `pick`). Without it (CPU, or a kernel that did
# not match SDPA) packed rows still come here and run SDPA one example at a time: the alternative, SDPA over
# the whole row with transformers' block-diagonal mask, costs memory and time in the row length squared
# (seen on CPU: a 2,048-token row of SmolLM2 held 8 GB and ran at a fifth of the padded speed).
_kernel_ok = False


def _varlen_fn():
    from torch.nn.attention.varlen import varlen_attn
    return varlen_attn, set(inspect.signature(varlen_attn).parameters)


def varlen_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None,
                     cu_seq_lens_q=None, max_length_q=None, **kwargs):
    """transformers' attention interface: query (batch, heads, seq, dim) -> output (batch, seq, heads, dim)."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if cu_seq_lens_q is None:  # not a packed row: ordinary (causal or masked) SDPA
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    batch, heads, seq, dim = query.shape
    special = (not _kernel_ok or batch != 1 or attention_mask is not None or dropout != 0.0 or kwargs.get("softcap") is not None
               or kwargs.get("sliding_window") is not None or getattr(module, "sliding_window", None) is not None)
    fn, params = (None, set()) if special else _varlen_fn()
    if special or ("scale" not in params and scaling is not None and abs(scaling - dim ** -0.5) > 1e-6):
        # something the kernel call below does not do: SDPA one example at a time
        return _per_example(sdpa_attention_forward, module, query, key, value, cu_seq_lens_q, dropout, scaling,
                            kwargs)
    q = query.transpose(1, 2).reshape(seq, heads, dim)
    k = key.transpose(1, 2).reshape(seq, key.shape[1], dim)
    v = value.transpose(1, 2).reshape(seq, value.shape[1], dim)
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
    cu = cu_seq_lens_q.to(device=q.device, dtype=torch.int32)
    out = fn(q, k, v, cu, cu, int(max_length_q), int(max_length_q), **extra)
    return out.reshape(1, seq, heads, dim), None


def _per_example(sdpa, module, query, key, value, cu_seq_lens, dropout, scaling, kwargs):
    """Causal SDPA over each example of a packed row separately: never attends across examples."""
    import torch
    bounds = cu_seq_lens.tolist()
    parts = [sdpa(module, query[:, :, a:b], key[:, :, a:b], value[:, :, a:b], None, dropout=dropout,
                  scaling=scaling, **kwargs)[0] for a, b in zip(bounds, bounds[1:])]
    return torch.cat(parts, dim=1), None


def register() -> None:
    from transformers import AttentionInterface
    AttentionInterface.register(NAME, varlen_attention)


def pick(project, device: str, dtype, config: dict | None = None) -> str:
    """The attention implementation the trainer uses for packed rows of a model whose attention is plain causal
    (no sliding window, no soft-capping, no attention dropout): ours, with the varlen kernel on CUDA when it
    checks out and SDPA per example otherwise."""
    global _kernel_ok
    if project.train.packing and _plain_attention(config or {}):
        _kernel_ok = varlen_available(device, dtype)
        register()
        return NAME
    return "sdpa"


def describe(implementation: str | None) -> str:
    """The attention a model trains with, in one line of the run's log."""
    if implementation != NAME:
        return f"Attention: {implementation or 'eager'} (transformers' own)"
    if _kernel_ok:
        return "Attention: PyTorch's varlen flash kernel on packed rows (no mask)"
    return "Attention: SDPA one example at a time on packed rows (the varlen kernel is not available here)"


def _plain_attention(config: dict) -> bool:
    layer_types = config.get("layer_types") or []
    sliding = (any(t != "full_attention" for t in layer_types) if layer_types
               else config.get("sliding_window") is not None and config.get("use_sliding_window", True))
    return (not sliding and config.get("attn_logit_softcapping") is None
            and not config.get("attention_dropout", 0.0))


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
