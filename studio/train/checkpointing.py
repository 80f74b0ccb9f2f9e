"""Gradient checkpointing whose saved layer inputs wait in CPU memory instead of on the GPU.

Plain checkpointing keeps each decoder layer's input on the GPU (layers x tokens x hidden x 2 bytes) and
recomputes the layer during the backward pass. With `offload_checkpoints`, the input is copied to pinned CPU
memory as the layer runs and copied back just before its recomputation, so the activations left on the GPU
are those of the single layer being recomputed. The copies overlap with compute on the same stream.
"""
from __future__ import annotations

import torch


class _OffloadedLayer(torch.autograd.Function):
    @staticmethod
    def forward(ctx, run, hidden, *rest):
        ctx.run, ctx.rest, ctx.device = run, rest, hidden.device
        on_cuda = hidden.device.type == "cuda"
        saved = torch.empty(hidden.shape, dtype=hidden.dtype, device="cpu", pin_memory=on_cuda)
        saved.copy_(hidden.detach(), non_blocking=on_cuda)
        ctx.saved = saved
        # The recomputation must draw the same dropout masks as this pass.
        ctx.cpu_rng = torch.get_rng_state()
        ctx.cuda_rng = torch.cuda.get_rng_state(hidden.device) if on_cuda else None
        with torch.no_grad():
            out = run(hidden, *rest)
        ctx.tuple_out = isinstance(out, tuple)
        return out

    @staticmethod
    def backward(ctx, *grads):
        hidden = ctx.saved.to(ctx.device, non_blocking=True).requires_grad_(True)
        ctx.saved = None
        devices = [ctx.device] if ctx.cuda_rng is not None else []
        with torch.random.fork_rng(devices=devices), torch.enable_grad():
            torch.set_rng_state(ctx.cpu_rng)
            if ctx.cuda_rng is not None:
                torch.cuda.set_rng_state(ctx.cuda_rng, ctx.device)
            out = ctx.run(hidden, *ctx.rest)
        outs = out if ctx.tuple_out else (out,)
        pairs = [(o, g) for o, g in zip(outs, grads)
                 if isinstance(o, torch.Tensor) and o.requires_grad and g is not None]
        torch.autograd.backward([o for o, _ in pairs], [g for _, g in pairs])
        return (None, hidden.grad) + (None,) * len(ctx.rest)


def offloaded_checkpoint(run, hidden, *rest):
    """Drop-in for torch.utils.checkpoint.checkpoint as transformers calls it: run(hidden, *rest)."""
    return _OffloadedLayer.apply(run, hidden, *rest)


def enable_checkpointing(model, offload: bool) -> None:
    """Checkpoint every decoder layer of a (peft-wrapped) transformers model; offload: keep inputs on the CPU."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base.config.use_cache = False
    # transformers 5.23 renamed it (and added its own offload option); 5.17, which Unsloth still requires and
    # the benchmark machine has, knows only the old name
    if hasattr(base, "activation_checkpointing_enable"):
        base.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if offload:
        layers = [m for m in base.modules() if getattr(m, "gradient_checkpointing", False)]
        if not layers:
            raise RuntimeError(f"{type(base).__name__} has no layers transformers can checkpoint")
        for layer in layers:
            layer._gradient_checkpointing_func = offloaded_checkpoint
    if not any(p.requires_grad for p in base.get_input_embeddings().parameters()):
        # With a frozen embedding nothing before the first layer needs a gradient, and a checkpointed layer
        # whose input needs none would give its adapters none either.
        base.enable_input_require_grads()

