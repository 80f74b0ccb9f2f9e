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
from typing import Any, NamedTuple

from studio import units
from studio.errors import ProjectError
from studio.plan.shapes import Shape, shape_from_config, targeted, unknown_targets
from studio.project import MethodSettings, TrainSettings
from studio.train.chunking import BYTES_PER_CHUNK_LOGIT, PLAIN_HEAD_FAMILIES, chunk_tokens
from studio.vocabulary import METHODS, OPTIMIZERS, Method

_METHOD, _TRAIN = MethodSettings(), TrainSettings()  # the project file's defaults are the planner's

NF4_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)  # 4-bit codes + 8-bit absmax per 64 + fp32 per 256 absmax blocks
CUDA_CONTEXT = 512 * units.MiB
ALLOCATOR_FIXED = 128 * units.MiB
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
    """The settings that move the estimate: a light, hashable copy of the project's choices, with the project
    file's defaults (studio.project), so the planner with no project says what a new project would do."""
    method: str = _METHOD.method
    rank: int = _METHOD.rank
    alpha: int = _METHOD.alpha
    dropout: float = _METHOD.dropout
    target_modules: tuple[str, ...] = tuple(_METHOD.target_modules)
    batch_size: int = _TRAIN.batch_size
    grad_accumulation: int = _TRAIN.grad_accumulation
    max_seq_len: int = _TRAIN.max_seq_len
    gradient_checkpointing: bool = _TRAIN.gradient_checkpointing
    offload_checkpoints: bool = _TRAIN.offload_checkpoints
    optimizer: str = _TRAIN.optimizer
    precision: str = _TRAIN.precision
    # Packed rows (the trainer's default) hold batch_size x max_seq_len tokens and go through varlen flash
    # attention: no mask. Padded rows carry a padding mask (see masked_attention).
    packing: bool = _TRAIN.packing
    lean_loss: bool = _TRAIN.lean_loss  # chunked head + cross-entropy: one chunk of logits at a time
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
    run = _Run(shape, s, METHODS[s.method], 4 if s.precision == "fp32" else 2, _targets(shape, s))
    weights, quantized = _weights(run)
    trainable = _trainable(run)
    optimizer, optimizer_temp, paged = _optimizer(run, trainable)
    kept, layer_full, layer_peak, layer_work = _activations(run)
    logits = _logits(run)
    extra = _workspace(run)
    peak = _peak(run, trainable, optimizer_temp, kept, layer_full, layer_peak, layer_work, logits, extra)
    dynamic = peak.activations + peak.logits + peak.workspace + (peak.gradients if s.grad_accumulation == 1 else 0)
    breakdown = {"weights": int(weights), "weights_quantized": int(quantized),
                 "adapters": int(0 if run.full else run.a * trainable), "gradients": int(peak.gradients),
                 "optimizer": int(optimizer), "activations": int(peak.activations), "logits": int(peak.logits),
                 "workspace": int(peak.workspace), "allocator": int(ALLOCATOR_FIXED + ALLOCATOR_FRACTION * dynamic),
                 "cuda_context": CUDA_CONTEXT}
    return Estimate(total_bytes=sum(breakdown.values()), breakdown=breakdown, labels=_labels(run),
                    assumptions=_assumptions(run, paged, peak, kept + logits), peak_phase=peak.phase,
                    params_total=shape.total_params, params_trainable=trainable, settings=s, shape=shape,
                    paged_optimizer_bytes=paged)


@dataclass(frozen=True)
class _Run:
    """What every term reads: the model, the settings, and the symbols of the module docstring."""
    shape: Shape
    s: PlanSettings
    method: Method
    c: int  # bytes of the compute dtype
    targets: tuple  # the linear layers of a block that get an adapter; none for full fine-tuning
    a: int = 4  # bytes of an fp32 adapter value

    @property
    def tokens(self) -> int:  # N: tokens per micro-batch
        return self.s.batch_size * self.s.max_seq_len

    @property
    def full(self) -> bool:
        return self.method.trains_base

    @property
    def dora(self) -> bool:
        return self.method.adapter == "dora"

    @property
    def train_bytes(self) -> int:
        """Bytes of one trainable value: the model's dtype for full fine-tuning, fp32 for adapters."""
        return self.c if self.full else self.a

    @property
    def lean(self) -> bool:
        return self.s.lean_loss and self.shape.family in PLAIN_HEAD_FAMILIES


class _Peak(NamedTuple):
    phase: str  # "backward" or "optimizer step"
    gradients: int
    activations: int
    logits: int
    workspace: int
    inside_layer: bool  # a backward peak inside a layer, after the logits are freed


def _targets(shape: Shape, s: PlanSettings) -> tuple:
    if METHODS[s.method].trains_base:
        return ()
    targets = tuple(targeted(shape, s.target_modules))
    if not targets:
        raise ProjectError("No LoRA target matches a layer of this model: use \"all-linear\" or some of "
                           f"{', '.join(shape.linear_names)}.")
    return targets


def _weights(run: _Run) -> tuple[int, int]:
    """(the 16-bit weights, the quantized linear layers of a 4-bit or 8-bit base)."""
    shape, c = run.shape, run.c
    linear = shape.layers * shape.linear_weight_params_per_layer
    if run.method.base == "nf4":
        return c * (shape.total_params - linear), int(linear * NF4_BYTES)
    if run.method.base == "int8":  # a byte per weight and an fp32 scale per output row
        return c * (shape.total_params - linear), linear + 4 * shape.layers * sum(lin.d_out for lin in shape.linears)
    return c * shape.total_params, 0


def _trainable(run: _Run) -> int:
    """The values the optimizer updates: every parameter, or the adapters' matrices (and DoRA's magnitudes)."""
    if run.full:
        return run.shape.total_params
    per_layer = sum(run.s.rank * (lin.d_in + lin.d_out) + (lin.d_out if run.dora else 0) for lin in run.targets)
    return run.shape.layers * per_layer


def _optimizer(run: _Run, trainable: int) -> tuple[int, int, int]:
    """(state on the GPU, the step's temporaries, paged state kept in unified memory outside the peak)."""
    optimizer, shape = OPTIMIZERS[run.s.optimizer], run.shape
    if optimizer.factored:  # one fp32 copy of the parameter and its update at a time
        values = _adafactor_full(shape) if run.full else _adafactor_values(shape, run.targets, run.s)
        biggest = max(max(lin.d_in * lin.d_out for lin in shape.linears), shape.vocab * shape.hidden) if run.full else 0
        return run.train_bytes * values, 12 * biggest, 0
    moment = run.train_bytes if optimizer.moment_bytes is None else optimizer.moment_bytes
    state = int(trainable * (2 * moment + (8 / 2048 if optimizer.eight_bit else 0)))  # + 8-bit block scales
    temporaries = moment * trainable if optimizer.foreach else 0  # foreach AdamW: sqrt(v) of every tensor at once
    return (0, 0, state) if optimizer.paged else (state, temporaries, 0)


def _activations(run: _Run) -> tuple[int, int, int, int]:
    """(kept for the backward pass when it starts, one layer's saved tensors, a layer's backward peak, a layer's
    backward intermediates)."""
    shape, s, c, n = run.shape, run.s, run.c, run.tokens
    h = shape.hidden
    mask = c * s.batch_size * s.max_seq_len ** 2 if s.masked_attention else 0
    dora_weights = (run.a * sum(lin.d_in * lin.d_out for lin in run.targets) if run.dora and s.dropout > 0 else 0)
    layer_full = _layer_bytes(shape, s, run.targets, c, run.a) * n + mask + dora_weights
    norm_train = (4 if shape.norm_fp32_weight else c) * h if run.full else 0
    tail = (4 * h + norm_train + (c * h if run.full else 0)) * n  # final norm, head input
    layer_work = c * (4 * shape.intermediate + 4 * h) * n  # gradients of gate, up, ... inside one layer
    if s.gradient_checkpointing:
        # each layer's input; offloaded: only the one being copied back for its recomputation
        offload = s.offload_checkpoints
        kept = (1 if offload else shape.layers) * c * h * n + tail
        return kept, layer_full, layer_full + layer_work, layer_work  # one layer recomputed at a time
    kept = shape.layers * layer_full + tail - _first_layer_credit(shape, s, run.targets) * n
    return kept, layer_full, layer_work, layer_work


def _logits(run: _Run) -> int:
    shape, n = run.shape, run.tokens
    vocab = shape.vocab
    if run.lean:  # one chunk's logits, the targets' hidden states and their gradient (+ the head's fp32 gradient)
        return (BYTES_PER_CHUNK_LOGIT * vocab * min(n, chunk_tokens(vocab)) + 2 * run.c * shape.hidden * n
                + (4 * vocab * shape.hidden if run.full else 0))
    return (12 + (4 * run.c if shape.logit_softcap else 0)) * vocab * n


def _workspace(run: _Run) -> int:
    """The token, label and position ids, and the largest temporary besides a layer's backward."""
    extra = 3 * 8 * run.tokens  # int64 each
    if run.method.quantized_base:  # the dequantized weight, in the forward and the backward pass
        biggest = max(run.shape.linears, key=lambda lin: lin.d_in * lin.d_out)
        extra += 2 * run.c * biggest.d_in * biggest.d_out
    if run.dora:  # the weight norm's matrices
        extra += max(run.a * lin.d_in ** 2 + 3 * run.a * lin.d_in * lin.d_out for lin in run.targets)
    return extra


def _peak(run: _Run, trainable: int, optimizer_temp: int, kept: int, layer_full: int, layer_peak: int,
          layer_work: int, logits: int, extra: int) -> _Peak:
    """The higher of the two phases, with the items it holds."""
    all_gradients = run.train_bytes * trainable
    head_gradient = run.train_bytes * run.shape.vocab * run.shape.hidden if run.full else 0  # the backward's first
    backward_gradients = all_gradients if run.s.grad_accumulation > 1 else head_gradient
    backward = kept + max(logits, layer_peak) + extra + backward_gradients
    if backward < all_gradients + optimizer_temp + extra:
        return _Peak("optimizer step", all_gradients, 0, 0, optimizer_temp + extra, False)
    if logits >= layer_peak:  # the peak is the loss's backward, right after the forward pass
        return _Peak("backward", backward_gradients, kept, logits, extra, False)
    recomputed = layer_full if run.s.gradient_checkpointing else 0  # the logits are freed by then
    return _Peak("backward", backward_gradients, kept + recomputed, 0, layer_work + extra, True)


def _labels(run: _Run) -> dict[str, str]:
    labels = dict(LABELS)
    if run.full:
        labels["weights"] = f"Model weights (trained, {8 * run.c}-bit)"
    elif run.method.base == "nf4":
        labels["weights"] = "Embeddings, head and norms (16-bit)"
        labels["weights_quantized"] = "Base linear layers, 4-bit NF4 + constants"
    elif run.method.base == "int8":
        labels["weights"] = "Embeddings, head and norms (16-bit)"
        labels["weights_quantized"] = "Base linear layers, 8-bit + scales"
    else:
        labels["weights"] = "Base model weights (frozen, 16-bit)"
    if run.dora:
        labels["adapters"] = "Trainable DoRA weights (fp32)"
    optimizer = OPTIMIZERS[run.s.optimizer]
    labels["optimizer"] = "Optimizer state (paged)" if optimizer.paged else f"Optimizer state ({optimizer.label})"
    return labels


def _assumptions(run: _Run, paged: int, peak: _Peak, early_peak: int) -> list[str]:
    """The estimate's assumptions in plain words, in the order its terms are added."""
    shape, s, n = run.shape, run.s, run.tokens
    notes = []
    if run.method.base == "nf4":
        notes.append("Base linear layers in 4-bit NF4 with double quantization (about 0.52 bytes per weight); "
                     "embeddings, the output head, norms and biases stay 16-bit.")
    elif run.method.base == "int8":
        notes.append("Base linear layers in 8-bit (1 byte per weight plus a scale per row); embeddings, "
                     "the output head, norms and biases stay 16-bit.")
    else:
        notes.append(f"Weights in {'fp32' if run.c == 4 else 'bf16/fp16'} ({run.c} bytes per parameter).")
    missing = unknown_targets(shape, s.target_modules) if not run.full else []
    if missing:
        notes.append(f"This model has no layer named {', '.join(missing)}; its linear layers are "
                     f"{', '.join(shape.linear_names)}.")
    if paged:
        notes.append(f"Paged optimizer state ({units.memory(paged, 2)}) lives in CUDA unified memory and moves to "
                     "CPU RAM when the GPU is full, so it is not counted in the peak.")
    if OPTIMIZERS[s.optimizer].eight_bit:
        notes.append("8-bit optimizer state: 2 bytes per trainable value.")
    if run.dora:
        notes.append("DoRA recomputes each weight's norm every step: slower and heavier than LoRA"
                     + (", and with dropout it keeps an fp32 copy of every adapted weight for the "
                        "backward pass." if s.dropout > 0 else "."))
    if peak.inside_layer:
        notes.append("The peak comes inside a layer's backward pass, after the logits are freed.")
    if peak.phase == "optimizer step":
        notes.append(f"The peak is the optimizer step, after activations are freed; activations and logits "
                     f"peak earlier at {units.memory(early_peak, 2)}.")
    notes.append(f"Activations for {s.batch_size} x {s.max_seq_len} tokens per step"
                 + (" with gradient checkpointing (one layer recomputed at a time)." if s.gradient_checkpointing
                    else " without gradient checkpointing."))
    if s.grad_accumulation > 1:
        notes.append(f"Gradient accumulation ({s.grad_accumulation} micro-batches) costs no activation memory, "
                     "but the summed gradients stay allocated between micro-batches.")
    if run.lean:
        notes.append(f"The loss runs over chunks of {min(n, chunk_tokens(shape.vocab)):,} positions, so the logits "
                     f"of a {shape.vocab:,}-token vocabulary never exist for the whole batch.")
    else:
        notes.append(f"Logits for a {shape.vocab:,}-token vocabulary are upcast to fp32 for the loss"
                     + (" (this model family keeps transformers' own loss)." if s.lean_loss else "."))
    if s.gradient_checkpointing and s.offload_checkpoints:
        notes.append("Checkpointed layer inputs wait in CPU memory (pinned), not on the GPU.")
    if s.packing:
        notes.append(f"Packed batches: up to {n:,} real tokens per step in one row, no padding; attention by "
                     "PyTorch's varlen flash kernel, without a mask.")
    if s.masked_attention and not s.packing:
        notes.append("Batches carry a padding mask, so attention uses the memory-efficient SDPA kernel.")
    if not shape.known_family:
        notes.append(f"Model type {shape.family!r} is not one the planner knows; it is sized as a llama-like model.")
    notes.append("Allocator overhead and CUDA context are typical values; the real ones vary by driver and GPU.")
    return notes


def _layer_bytes(shape: Shape, s: PlanSettings, targets, c: int, a: int) -> int:
    """Bytes autograd keeps for the backward pass, per token, in one decoder block."""
    h, I, H, K, d = shape.hidden, shape.intermediate, shape.heads, shape.kv_heads, shape.head_dim
    method = METHODS[s.method]
    full = method.trains_base
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
    if full or method.base == "int8":
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
        if method.adapter == "dora":
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
    if METHODS[s.method].trains_base:
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
    per_layer = sum(2 * s.rank + lin.d_in + lin.d_out + (lin.d_out if METHODS[s.method].adapter == "dora" else 0)
                    for lin in targets)
    return shape.layers * per_layer

