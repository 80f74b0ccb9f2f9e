"""The studio's vocabularies, each in one table: training methods, optimizers, GGUF quantization types and the
layouts a row of training data may have.

Every other module takes its names and facts from here: the project file checks its values against these
tables, the memory planner reads how each method stores its base and how much state each optimizer keeps, the
export reads bits per weight and the parity check's thresholds, and the pages show the labels and advice.
A new method, optimizer or quant type starts with one entry here. Pure data: nothing is imported.
"""
from __future__ import annotations

from dataclasses import dataclass

# How a row of training data is laid out; studio.data.formats detects and reads each ("auto" in a project: detect).
ROW_FORMATS = ("messages", "sharegpt", "alpaca", "prompt_completion", "text")
# The same layouts in plain words, for Simple view (Expert view names the format itself).
ROW_FORMAT_WORDS = {"messages": "conversations", "sharegpt": "conversations", "alpaca": "instructions and answers",
                    "prompt_completion": "questions and answers", "text": "plain text"}


@dataclass(frozen=True)
class Method:
    name: str  # as the project file stores it: [method] method = "qlora"
    label: str  # as the window shows it
    advice: str  # plain words from the practice the product is built on (first sentence: the short hint)
    base: str = "16-bit"  # how the base model's linear layers are stored: "16-bit", "nf4" (4-bit) or "int8"
    adapter: str | None = "lora"  # "lora", "dora", or None: full fine-tuning trains the weights themselves

    @property
    def trains_base(self) -> bool:
        return self.adapter is None

    @property
    def quantized_base(self) -> bool:
        """Stored in 4 or 8 bits by bitsandbytes, which quantizes on NVIDIA GPUs only."""
        return self.base != "16-bit"


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("full", "Full fine-tuning",
           "Full fine-tuning changes every weight. It needs the most memory: weights, gradients and two AdamW "
           "moments for every parameter (about 16 bytes per parameter with the usual fp32 master copy, 8 in the "
           "studio's pure bf16), so it suits small models. Learning rate about 1e-5 to 5e-5.", adapter=None),
    Method("lora", "LoRA",
           "LoRA freezes the base model (2 bytes per parameter) and trains small rank-r matrices beside its linear "
           "layers. Start with rank 16, alpha 2x the rank, learning rate 1e-4 to 3e-4, all linear layers. The best "
           "first choice when the 16-bit model fits."),
    Method("qlora", "QLoRA (4-bit base)",
           "QLoRA stores the frozen base in 4-bit NF4 (about 0.5 bytes per parameter) and trains LoRA matrices on "
           "top: a model about 3x bigger fits, but training is 30-50% slower. When exporting, the adapter is "
           "merged into the 16-bit base, never the 4-bit one.", base="nf4"),
    Method("lora8bit", "LoRA on an 8-bit base",
           "8-bit LoRA stores the frozen base in 8 bits (1 byte per parameter): between LoRA and QLoRA in memory, "
           "and slower than both per step. Use it when 16-bit does not fit and 4-bit worries you.", base="int8"),
    Method("dora", "DoRA",
           "DoRA is LoRA that also learns each weight's magnitude. It can match full fine-tuning a little more "
           "closely at low rank, but it is slower and needs more memory than LoRA.", adapter="dora"),
)}


@dataclass(frozen=True)
class Optimizer:
    name: str  # as transformers' TrainingArguments(optim=...) and the project file name it
    label: str
    moment_bytes: float | None = None  # bytes per AdamW moment; None: the trained value's own dtype
    paged: bool = False  # state in CUDA unified memory, which spills to CPU RAM instead of failing
    factored: bool = False  # Adafactor: a row and a column per matrix instead of two full moments
    foreach: bool = False  # steps every tensor at once, holding a moment-sized temporary (torch's AdamW)

    @property
    def eight_bit(self) -> bool:
        return self.moment_bytes == 1


OPTIMIZERS: dict[str, Optimizer] = {o.name: o for o in (
    Optimizer("adamw_torch", "AdamW", foreach=True),
    Optimizer("adamw_8bit", "8-bit AdamW", moment_bytes=1),
    Optimizer("paged_adamw_8bit", "paged 8-bit AdamW", moment_bytes=1, paged=True),
    Optimizer("paged_adamw_32bit", "paged AdamW", moment_bytes=4, paged=True),
    Optimizer("adafactor", "Adafactor", factored=True),
)}


@dataclass(frozen=True)
class QuantType:
    name: str  # as llama.cpp names it, lower case: "q4_k_m"
    bits_per_weight: float  # from llama.cpp's block layouts: the file size before the export is made
    advice: str  # what a user gives up for the smaller file
    # The parity check (studio.export.parity) flags a file when its top token differs from the merged model's
    # more often than this floor allows and its mean KL divergence is at least max_kl. 16-bit files have no
    # max_kl: they must keep the top token at the floor AND the perplexity within 1 %.
    top1_floor: float
    max_kl: float | None
    target_kl: float | None = None  # the stricter quality target reported beside the file (Q8_0)

    @property
    def sixteen_bit(self) -> bool:
        return self.bits_per_weight == 16


QUANT_TYPES: dict[str, QuantType] = {q.name: q for q in (
    QuantType("f16", 16.0, "16-bit: exactly the trained model, the largest file", 0.99, None),
    QuantType("bf16", 16.0, "16-bit brain float: exact, for runtimes that prefer it", 0.99, None),
    QuantType("q8_0", 8.5, "8-bit: practically indistinguishable from 16-bit, half the size", 0.95, 0.01,
              target_kl=0.005),
    QuantType("q6_k", 6.56, "6-bit: very close to 16-bit", 0.90, 0.05),
    QuantType("q5_k_m", 5.69, "5-bit: close to 16-bit, a good step down in size", 0.90, 0.05),
    QuantType("q5_0", 5.5, "5-bit (older layout)", 0.90, 0.05),
    QuantType("q4_k_m", 4.85, "4-bit: the usual choice for chat apps, small with good quality", 0.80, 0.10),
    QuantType("q4_k_s", 4.58, "4-bit, a little smaller than Q4_K_M, a little worse", 0.80, 0.10),
    QuantType("q4_0", 4.5, "4-bit (older layout)", 0.80, 0.10),
    QuantType("q3_k_m", 3.91, "3-bit: small, quality visibly drops", 0.60, 0.30),
    QuantType("q2_k", 3.35, "2-bit: smallest, for trying huge models on little memory; quality suffers", 0.60, 0.30),
)}

# Which exported file the Test page chats with: the closest to the trained weights first (Q8_0 before F16:
# as exact in practice, and twice as fast to load and run).
CHAT_PREFERENCE = ("q8_0", "f16", "bf16", "q6_k", "q5_k_m", "q4_k_m")
# Which file the Ollama Modelfile points at: the smallest type that keeps a chat model's quality.
MODELFILE_PREFERENCE = ("q4_k_m", "q5_k_m", "q6_k", "q8_0", "q4_k_s", "q4_0", "f16", "bf16")
