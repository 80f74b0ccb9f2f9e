"""Peak GPU memory of one training run, itemized, from config.json and the project's settings alone.

Pure arithmetic (no torch, no weights): one estimate takes microseconds, so the GUI can recompute it on
every slider move. The numbers model the studio's trainer as it runs: a Hugging Face model whose weights are
loaded in bf16 (fp32 when precision = "fp32"), no autocast, SDPA attention, peft LoRA/DoRA adapters kept in
fp32 (peft's default `autocast_adapter_dtype`), bitsandbytes for 4-bit / 8-bit bases, the studio's chunked
loss (studio.train.loss; transformers' full-logit loss with lean_loss off or for families it does not cover),
packed rows through varlen attention, and PyTorch's caching allocator. Symbols:

    P      parameters of the model (counted from the config, see shapes.py)
    L, h   layers, hidden size;  H, K, d: query heads, key/value heads, head size;  I: MLP width;  V: vocab
    N      tokens per micro-batch = batch_size x max_seq_len (the packing token budget; padded batches pad
           to their longest example, at worst the cutoff)
    c      bytes of the compute dtype: 2 (bf16/fp16) or 4 (fp32);  a = 4: bytes of an fp32 adapter value
    r      LoRA rank;  T = max_seq_len

Terms (bytes):
  weights            16-bit base: c * P.  QLoRA / 8-bit LoRA store the blocks' linear weights quantized
                     and keep embeddings, the output head, norms and biases 16-bit (c * those params):
                       NF4 + double quant: 0.5 + 1/64 (8-bit absmax per 64 values) + 4/(64*256) per weight
                       int8: 1 per weight + 4 per output row (the fp32 row scale)
  adapters           LoRA: r * (d_in + d_out) per targeted linear per layer; DoRA adds d_out (magnitude);
                     stored fp32 (a bytes).  Full fine-tuning: none (the weights themselves train).
  gradients          one per trainable value, in its dtype. Full FT: c * P.  While the backward pass runs,
                     gradients appear as activations are freed, so with grad_accumulation = 1 only the
                     head's gradient exists at the activation peak; with accumulation > 1 the summed
                     gradients from the previous micro-batch are all alive.
  optimizer          per trainable value: adamw_torch 2 moments in the parameter's dtype (2*c or 2*a);
                     adamw_8bit 2 bytes (+1/1024 block scales); adafactor ~ (rows + cols) of each matrix;
                     paged_* optimizers keep their state in CUDA unified memory that spills to CPU RAM, so it
                     is not counted in the peak (shown in the assumptions instead).
  activations        what autograd saves for the backward pass, per token per layer (see _layer_bytes):
                       norms: the fp32 copy of the input, 4h each (+ c*h when the norm weight trains)
                       attention (SDPA): rotated q and k, v, the output, fp32 log-sum-exp:
                         c*(2Hd + 2Kd) + 4H;  with a padding/packing mask the kernel is the memory-efficient
                         one, K/V heads are repeated to H (c*4Hd) and a c*T*T mask per row is kept per layer
                       MLP: gate, up and act(gate) outputs: 3*c*I
                       inputs of trainable 16-bit linears (full FT): c*(2h + I) (o_proj reuses the attention
                         output); 8-bit bases keep the same inputs for their backward
                       each LoRA linear: its fp32 input copy a*d_in, the dropout mask d_in, A's output a*r
                         (fp32 weights without dropout: A keeps the block's own input tensor, once for
                         the linears that share it);
                         DoRA adds the LoRA output a*d_out, the base output (c*d_out, or a*d_out recomputed
                         with dropout) and, with dropout, an fp32 copy of each adapted weight a*d_in*d_out
                       (in the first block of an adapter method, nothing upstream needs a gradient: its
                       input norm and the masks of the adapters reading it are not kept)
                     x N x L.  With gradient checkpointing only each layer's input (c*h*N per layer) is kept,
                     and one layer is recomputed at a time during the backward pass; with offloaded
                     checkpoints those inputs wait in CPU memory and one is on the GPU at a time.
                     Packed rows use varlen flash attention: no mask, K/V heads not repeated.
  logits             lean loss: one chunk of positions at a time (8*V bytes per position: fp32 logits, the
                     16-bit matmul output and gradient), the targets' hidden states and their gradient
                     (2*c*h*N), and for full fine-tuning the head's fp32 gradient (4*V*h).
                     transformers' loss instead upcasts all logits to fp32: at the start of the backward
                     pass the log-softmax output, its incoming gradient and the gradient it produces coexist:
                     12*V per token (+ c*V*2 for gemma2's soft-capping). 150k-vocab models spend GBs there.
  workspace          the largest temporary at the peak moment: a layer's backward intermediates
                     (c*(4I + 4h) per token), a dequantized 4-bit/8-bit weight (c*d_in*d_out, twice), DoRA's
                     weight-norm matrices (a*d_in^2 + 3a*d_in*d_out), or the optimizer step's temporaries
                     (foreach AdamW: one moment-sized buffer), plus the token/label/position id tensors.
  allocator          reserved minus allocated in PyTorch's caching allocator: a fixed 128 MiB (cuBLAS
                     workspaces, small-block pools) + 8 % of what is allocated and freed every step.
  cuda_context       the driver context and kernels: 0.5 GiB; not part of torch's reserved memory.

peak = weights + adapters + optimizer + max(backward phase, optimizer-step phase) + allocator + context,
  backward phase = activations + max(logits, layer workspace) + gradients alive then
  optimizer phase = all gradients + optimizer temporaries
The breakdown shows the items of whichever phase is higher. `reserved_bytes` (total minus cuda_context) is
what torch.cuda.max_memory_reserved() should report; bench/vram_accuracy.py measures exactly that.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from studio.errors import ProjectError
from studio.plan.shapes import Shape, shape_from_config, targeted, unknown_targets
from studio.train.chunking import BYTES_PER_CHUNK_LOGIT, PLAIN_HEAD_FAMILIES, chunk_tokens

GiB = 1024 ** 3
MiB = 1024 ** 2

METHODS = ("full", "lora", "qlora", "lora8bit", "dora")
OPTIMIZERS = ("adamw_torch", "adamw_8bit", "paged_adamw_8bit", "paged_adamw_32bit", "adafactor")

NF4_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)  # 4-bit codes + 8-bit absmax per 64 + fp32 per 256 absmax blocks
CUDA_CONTEXT = 512 * MiB
ALLOCATOR_FIXED = 128 * MiB
ALLOCATOR_FRACTION = 0.08

# Keys of the breakdown, in the order the GUI shows them, with the words it shows.
LABELS = {
    "weights": "Model weights (16-bit)",
    "weights_quantized": "Quantized linear layers",
    "adapters": "Trainable adapter weights (fp32)",
    "gradients": "Gradients",
    "optimizer": "Optimizer state",
    "activations": "Activations",
    "logits": "Logits and loss",
    "workspace": "Temporary workspace",
    "allocator": "Allocator overhead",
    "cuda_context": "CUDA context",
}


@dataclass(frozen=True)
class PlanSettings:
    """The settings that move the estimate: a light, hashable copy of the project's choices."""
    method: str = "lora"
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("all-linear",)
    batch_size: int = 4
    grad_accumulation: int = 1
    max_seq_len: int = 1024
    gradient_checkpointing: bool = False
    offload_checkpoints: bool = False
    optimizer: str = "adamw_torch"
    precision: str = "auto"
    # Packed rows (the trainer's default) hold batch_size x max_seq_len tokens and go through varlen flash
    # attention: no mask. Padded rows carry a padding mask (see masked_attention).
    packing: bool = True
    lean_loss: bool = True  # chunked head + cross-entropy: one chunk of logits at a time
    # Padded batches carry a padding mask, which sends SDPA to its memory-efficient kernel.
    # False: unpadded full-length rows, the flash kernel (what bench/vram_accuracy.py feeds).
    masked_attention: bool = False  # the default trainer packs (no mask); from_project sets it from packing

    @classmethod
    def from_project(cls, project) -> "PlanSettings":
        m, t = project.method, project.train
        return cls(method=m.method, rank=m.rank, alpha=m.alpha, dropout=m.dropout,
                   target_modules=tuple(m.target_modules), batch_size=t.batch_size,
                   grad_accumulation=t.grad_accumulation, max_seq_len=t.max_seq_len,
                   gradient_checkpointing=t.gradient_checkpointing,
                   offload_checkpoints=t.offload_checkpoints and t.gradient_checkpointing,
                   optimizer=t.optimizer, precision=t.precision, packing=t.packing, lean_loss=t.lean_loss,
                   masked_attention=not t.packing)

    def with_changes(self, change: dict[str, Any]) -> "PlanSettings":
        """Apply changes keyed like the project file ("train.batch_size") or by field name."""
        names = {f.name for f in fields(self)}
        values = {}
        for key, value in change.items():
            name = key.split(".", 1)[-1]  # "method.rank" -> "rank"; "method.method" -> "method"
            if name not in names:
                raise ProjectError(f"{key!r} is not a setting the memory planner knows.")
            values[name] = tuple(value) if name == "target_modules" else value
        return replace(self, **values)


def as_settings(project_or_settings) -> PlanSettings:
    """Accept a PlanSettings, a Project, or a dict of changes over the defaults."""
    if isinstance(project_or_settings, PlanSettings):
        return project_or_settings
    if isinstance(project_or_settings, dict):
        return PlanSettings().with_changes(project_or_settings)
    if hasattr(project_or_settings, "method") and hasattr(project_or_settings, "train"):
        return PlanSettings.from_project(project_or_settings)
    raise TypeError("estimate() needs a Project, a PlanSettings or a dict of settings.")


@dataclass
class Estimate:
    total_bytes: int
    breakdown: dict[str, int]  # LABELS order; sums to total_bytes
    labels: dict[str, str]
    assumptions: list[str]
    peak_phase: str  # "backward" or "optimizer step"
    params_total: int
    params_trainable: int
    settings: PlanSettings = field(repr=False)
    shape: Shape = field(repr=False)
    paged_optimizer_bytes: int = 0  # kept in unified memory, not in the peak

    @property
    def reserved_bytes(self) -> int:
        """What torch.cuda.max_memory_reserved() should show: everything but the CUDA context."""
        return self.total_bytes - self.breakdown["cuda_context"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "total_bytes": self.total_bytes,
            "reserved_bytes": self.reserved_bytes,
            "breakdown": dict(self.breakdown),
            "labels": dict(self.labels),
            "assumptions": list(self.assumptions),
            "peak_phase": self.peak_phase,
            "params_total": self.params_total,
            "params_trainable": self.params_trainable,
            "paged_optimizer_bytes": self.paged_optimizer_bytes,
            "settings": {f.name: getattr(self.settings, f.name) for f in fields(self.settings)},
        }


def check_settings(s: PlanSettings) -> None:
    if s.method not in METHODS:
        raise ProjectError(f"method {s.method!r} is not one of: {', '.join(METHODS)}.")
    if s.optimizer not in OPTIMIZERS:
        raise ProjectError(f"optimizer {s.optimizer!r} is not one of: {', '.join(OPTIMIZERS)}.")
    for name in ("rank", "batch_size", "grad_accumulation", "max_seq_len"):
        value = getattr(s, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ProjectError(f"{name} = {value!r} must be a whole number of at least 1.")


def estimate(config: dict | Shape, project_or_settings) -> Estimate:
    """Itemized peak GPU memory for training this model with these settings (see the module docstring)."""
    shape = config if isinstance(config, Shape) else shape_from_config(config)
    s = as_settings(project_or_settings)
    check_settings(s)
    notes: list[str] = []
    c = 4 if s.precision == "fp32" else 2
    a = 4  # adapters are fp32
    full = s.method == "full"
    lora = not full
    dora = s.method == "dora"
    quant = {"qlora": "nf4", "lora8bit": "int8"}.get(s.method)
    N = s.batch_size * s.max_seq_len
    L, h, I, V = shape.layers, shape.hidden, shape.intermediate, shape.vocab
    P = shape.total_params

    # --- weights -------------------------------------------------------------------------------------
    lin_w = L * shape.linear_weight_params_per_layer
    if quant == "nf4":
        quantized = int(lin_w * NF4_BYTES)
        weights = c * (P - lin_w)
        notes.append("Base linear layers in 4-bit NF4 with double quantization (about 0.52 bytes per weight); "
                     "embeddings, the output head, norms and biases stay 16-bit.")
    elif quant == "int8":
        quantized = lin_w + 4 * L * sum(lin.d_out for lin in shape.linears)
        weights = c * (P - lin_w)
        notes.append("Base linear layers in 8-bit (1 byte per weight plus a scale per row); embeddings, "
                     "the output head, norms and biases stay 16-bit.")
    else:
        quantized = 0
        weights = c * P
        notes.append(f"Weights in {'fp32' if c == 4 else 'bf16/fp16'} ({c} bytes per parameter).")

    # --- trainable values ------------------------------------------------------------------------------
    targets = targeted(shape, s.target_modules) if lora else ()
    if lora:
        missing = unknown_targets(shape, s.target_modules)
        if missing:
            notes.append(f"This model has no layer named {', '.join(missing)}; its linear layers are "
                         f"{', '.join(shape.linear_names)}.")
        if not targets:
            raise ProjectError("No LoRA target matches a layer of this model: use \"all-linear\" or some of "
                               f"{', '.join(shape.linear_names)}.")
        per_layer = sum(s.rank * (lin.d_in + lin.d_out) + (lin.d_out if dora else 0) for lin in targets)
        trainable = L * per_layer
        train_bytes = a
        adapters = a * trainable
    else:
        trainable = P
        train_bytes = c
        adapters = 0
    grads_all = train_bytes * trainable

    # --- optimizer state -------------------------------------------------------------------------------
    paged = 0
    if s.optimizer == "adamw_torch":
        optimizer = 2 * train_bytes * trainable
        opt_temp = train_bytes * trainable  # foreach AdamW: sqrt(v) for every tensor at once
    elif s.optimizer == "adamw_8bit":
        optimizer = int(trainable * (2 + 8 / 2048))
        opt_temp = 0
    elif s.optimizer.startswith("paged_"):
        paged = int(trainable * (2 + 8 / 2048)) if s.optimizer.endswith("8bit") else 8 * trainable
        optimizer = 0
        opt_temp = 0
        notes.append(f"Paged optimizer state ({_gb(paged)}) lives in CUDA unified memory and moves to CPU RAM "
                     "when the GPU is full, so it is not counted in the peak.")
    else:  # adafactor: factored second moment; one fp32 copy of the parameter and its update at a time
        optimizer = train_bytes * (_adafactor_values(shape, targets, s) if lora else _adafactor_full(shape))
        biggest = max(lin.d_in * lin.d_out for lin in shape.linears) if full else 0
        if full:
            biggest = max(biggest, V * h)
        opt_temp = 12 * biggest
    if s.optimizer in ("adamw_8bit", "paged_adamw_8bit"):
        notes.append("8-bit optimizer state: 2 bytes per trainable value.")

    # --- activations -----------------------------------------------------------------------------------
    per_token = _layer_bytes(shape, s, targets, c, a)
    mask_per_layer = c * s.batch_size * s.max_seq_len ** 2 if s.masked_attention else 0
    offload = s.gradient_checkpointing and s.offload_checkpoints
    dora_weights_per_layer = (a * sum(lin.d_in * lin.d_out for lin in targets)
                              if dora and s.dropout > 0 else 0)
    layer_full = per_token * N + mask_per_layer + dora_weights_per_layer
    norm_train = (4 if shape.norm_fp32_weight else c) * h if full else 0
    tail = (4 * h + norm_train + (c * h if full else 0)) * N  # final norm, head input
    layer_work = c * (4 * I + 4 * h) * N  # a layer's backward intermediates (gradients of gate, up, ...)
    if s.gradient_checkpointing:
        # each layer's input; offloaded: only the one being copied back for its recomputation
        kept = (1 if offload else L) * c * h * N + tail
        layer_peak = layer_full + layer_work  # backward: one layer recomputed at a time
    else:
        kept = L * layer_full + tail - _first_layer_credit(shape, s, targets) * N
        layer_peak = layer_work
    lean = s.lean_loss and shape.family in PLAIN_HEAD_FAMILIES
    if lean:  # one chunk's logits, the targets' hidden states and their gradient (+ the head's fp32 gradient)
        logits = (BYTES_PER_CHUNK_LOGIT * V * min(N, chunk_tokens(V)) + 2 * c * h * N
                  + (4 * V * h if full else 0))
    else:
        logits = (12 + (4 * c if shape.logit_softcap else 0)) * V * N

    # --- workspace -------------------------------------------------------------------------------------
    biggest_lin = max(shape.linears, key=lambda lin: lin.d_in * lin.d_out)
    extra = 3 * 8 * N  # input ids, labels, position ids (int64)
    if quant:
        extra += 2 * c * biggest_lin.d_in * biggest_lin.d_out  # dequantized weight in forward and backward
    if dora:
        extra += max(a * lin.d_in ** 2 + 3 * a * lin.d_in * lin.d_out for lin in targets)
        notes.append("DoRA recomputes each weight's norm every step: slower and heavier than LoRA"
                     + (", and with dropout it keeps an fp32 copy of every adapted weight for the "
                        "backward pass." if s.dropout > 0 else "."))

    # --- the two phases --------------------------------------------------------------------------------
    head_grad = train_bytes * V * h if full else 0  # the first gradient the backward pass makes
    grads_bwd = grads_all if s.grad_accumulation > 1 else head_grad
    bwd_phase = kept + max(logits, layer_peak) + extra + grads_bwd
    opt_phase = grads_all + opt_temp + extra
    if bwd_phase >= opt_phase:
        phase = "backward"
        gradients = grads_bwd
        if logits >= layer_peak:  # the peak is the loss's backward, right after the forward pass
            act_shown, logits_shown, workspace = kept, logits, extra
        else:  # the peak is inside a layer's backward; the logits are freed by then
            recomputed = layer_full if s.gradient_checkpointing else 0
            act_shown, logits_shown, workspace = kept + recomputed, 0, layer_work + extra
            notes.append("The peak comes inside a layer's backward pass, after the logits are freed.")
    else:
        phase = "optimizer step"
        gradients, act_shown, logits_shown, workspace = grads_all, 0, 0, opt_temp + extra
        notes.append(f"The peak is the optimizer step, after activations are freed; activations and logits "
                     f"peak earlier at {_gb(kept + logits)}.")
    dynamic = act_shown + logits_shown + workspace + (gradients if s.grad_accumulation == 1 else 0)
    allocator = int(ALLOCATOR_FIXED + ALLOCATOR_FRACTION * dynamic)

    breakdown = {"weights": int(weights), "weights_quantized": int(quantized), "adapters": int(adapters),
                 "gradients": int(gradients), "optimizer": int(optimizer), "activations": int(act_shown),
                 "logits": int(logits_shown), "workspace": int(workspace), "allocator": allocator,
                 "cuda_context": CUDA_CONTEXT}
    labels = dict(LABELS)
    if full:
        labels["weights"] = "Model weights (trained, {}-bit)".format(8 * c)
    elif quant:
        labels["weights"] = "Embeddings, head and norms (16-bit)"
        labels["weights_quantized"] = ("Base linear layers, 4-bit NF4 + constants" if quant == "nf4"
                                       else "Base linear layers, 8-bit + scales")
    else:
        labels["weights"] = "Base model weights (frozen, 16-bit)"
    if dora:
        labels["adapters"] = "Trainable DoRA weights (fp32)"
    labels["optimizer"] = {"adamw_torch": "Optimizer state (AdamW)", "adamw_8bit": "Optimizer state (8-bit AdamW)",
                           "adafactor": "Optimizer state (Adafactor)"}.get(s.optimizer, "Optimizer state (paged)")
    notes.append(f"Activations for {s.batch_size} x {s.max_seq_len} tokens per step"
                 + (" with gradient checkpointing (one layer recomputed at a time)." if s.gradient_checkpointing
                    else " without gradient checkpointing."))
    if s.grad_accumulation > 1:
        notes.append(f"Gradient accumulation ({s.grad_accumulation} micro-batches) costs no activation memory, "
                     "but the summed gradients stay allocated between micro-batches.")
    if lean:
        notes.append(f"The loss runs over chunks of {min(N, chunk_tokens(V)):,} positions, so the logits of a "
                     f"{V:,}-token vocabulary never exist for the whole batch.")
    else:
        notes.append(f"Logits for a {V:,}-token vocabulary are upcast to fp32 for the loss"
                     + (" (this model family keeps transformers' own loss)." if s.lean_loss else "."))
    if offload:
        notes.append("Checkpointed layer inputs wait in CPU memory (pinned), not on the GPU.")
    if s.packing:
        notes.append(f"Packed batches: up to {N:,} real tokens per step in one row, no padding; attention by "
                     "PyTorch's varlen flash kernel, without a mask.")
    if s.masked_attention and not s.packing:
        notes.append("Batches carry a padding mask, so attention uses the memory-efficient SDPA kernel.")
    if not shape.known_family:
        notes.append(f"Model type {shape.family!r} is not one the planner knows; it is sized as a llama-like model.")
    notes.append("Allocator overhead and CUDA context are typical values; the real ones vary by driver and GPU.")
    return Estimate(total_bytes=sum(breakdown.values()), breakdown=breakdown, labels=labels, assumptions=notes,
                    peak_phase=phase, params_total=P, params_trainable=trainable, settings=s,
                    shape=shape, paged_optimizer_bytes=paged)


def _layer_bytes(shape: Shape, s: PlanSettings, targets, c: int, a: int) -> int:
    """Bytes autograd keeps for the backward pass, per token, in one decoder block."""
    h, I, H, K, d = shape.hidden, shape.intermediate, shape.heads, shape.kv_heads, shape.head_dim
    full = s.method == "full"
    norm_train = c * h if full else 0
    if shape.norm_fp32_weight and full:
        norm_train = 4 * h  # gemma multiplies in fp32 and keeps that product
    total = shape.norms_per_layer * (4 * h + norm_train)
    if shape.qk_norm:
        total += 4 * (H + K) * d + (c * (H + K) * d if full else 0)
    # attention: rotated q and k, v, the output, log-sum-exp (fp32, per head)
    kv_heads = H if s.masked_attention else K  # a mask makes transformers repeat K/V heads
    v_bytes = c * kv_heads * d
    if shape.fused_qkv:  # v is a view into qkv_proj's output, which stays alive whole
        v_bytes = c * (H + 2 * K) * d + (c * H * d if s.masked_attention else 0)
    total += c * H * d + c * kv_heads * d + v_bytes + c * H * d + 4 * H
    # MLP: gate, up and the activation's output
    total += 3 * c * I
    # inputs kept for the weight gradient of trainable linears, or by bitsandbytes' 8-bit matmul
    if full or s.method == "lora8bit":
        total += c * (2 * h + I)
    read = set()  # the block's own tensors that adapters read uncast and undropped (kept once each)
    for lin in targets:  # LoRA / DoRA branches
        keep = a * lin.d_in + (lin.d_in if s.dropout > 0 else 0) + a * s.rank
        if c == a and s.dropout == 0:
            # no cast and no dropout: A keeps the block's tensor itself, which the frozen block would not:
            # a norm's output (shared by q/k/v, by gate/up), act(gate)*up; the attention output only
            # when SDPA's transposed output was copied (padded rows), else it is the kernel's own output
            source = _ADAPTER_INPUT.get(lin.name, lin.name)
            shared = source in read or (source == "attention output" and not s.masked_attention)
            read.add(source)
            keep = a * s.rank + (0 if shared else a * lin.d_in)
        if s.method == "dora":
            # the LoRA output (fp32) and the base output: the block's own with no dropout, else
            # recomputed in fp32 from the dropped-out input
            keep += a * lin.d_out + (a if s.dropout > 0 else c) * lin.d_out
        total += keep
    return total


# Which tensor of the block each adapted linear reads.
_ADAPTER_INPUT = {"q_proj": "attention norm", "k_proj": "attention norm", "v_proj": "attention norm",
                  "qkv_proj": "attention norm", "o_proj": "attention output", "gate_proj": "MLP norm",
                  "up_proj": "MLP norm", "gate_up_proj": "MLP norm", "down_proj": "act(gate)*up"}


def _first_layer_credit(shape: Shape, s: PlanSettings, targets) -> int:
    """Per token: with a frozen embedding nothing before the first adapter needs a gradient, so the first
    block's input norm and the dropout masks of the adapters reading it are not kept."""
    if s.method == "full":
        return 0
    credit = 4 * shape.hidden
    if s.dropout > 0:
        credit += sum(lin.d_in for lin in targets if lin.name in ("q_proj", "k_proj", "v_proj", "qkv_proj"))
    return credit


def _adafactor_full(shape: Shape) -> int:
    """Adafactor's factored second moment: rows + cols for matrices, the whole vector otherwise."""
    per_layer = sum(lin.d_in + lin.d_out + (lin.d_out if lin.bias else 0) for lin in shape.linears)
    per_layer += shape.norm_params_per_layer
    head = 0 if shape.tied else shape.vocab + shape.hidden
    return shape.layers * per_layer + shape.vocab + shape.hidden + head + shape.hidden


def _adafactor_values(shape: Shape, targets, s: PlanSettings) -> int:
    per_layer = sum(2 * s.rank + lin.d_in + lin.d_out + (lin.d_out if s.method == "dora" else 0)
                    for lin in targets)
    return shape.layers * per_layer


def _gb(n: float) -> str:
    return f"{n / GiB:.2f} GB"
