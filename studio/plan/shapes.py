"""A decoder model's shape, read from its config.json alone (no weights, no torch).

Everything the planner needs is here: the sizes of every linear layer in a block (with the names the
model's own code gives them, so LoRA target names can be matched), the norms, the embedding and the head.
"""
from __future__ import annotations

from dataclasses import dataclass

from studio.errors import ModelError

# Families whose block layout we know. Anything else with the usual config keys is read as llama-like,
# and the estimate says so.
KNOWN_FAMILIES = ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi3")


@dataclass(frozen=True)
class Linear:
    name: str  # the module's name in the model's code: "q_proj", "qkv_proj", "gate_up_proj", ...
    d_in: int
    d_out: int
    bias: bool

    @property
    def params(self) -> int:
        return self.d_in * self.d_out + (self.d_out if self.bias else 0)


@dataclass(frozen=True)
class Shape:
    family: str
    known_family: bool
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tied: bool
    linears: tuple[Linear, ...]  # one block's linear layers, in forward order
    norms_per_layer: int  # RMSNorms over `hidden` in one block
    qk_norm: bool  # qwen3 / gemma3 normalize q and k per head (head_dim weights each)
    fused_qkv: bool  # phi3: one qkv_proj whose output holds q, k and v
    norm_fp32_weight: bool  # gemma computes its norms fully in fp32
    logit_softcap: bool  # gemma2 squashes the logits with tanh: one more logits-sized tensor

    @property
    def embed_params(self) -> int:
        return self.vocab * self.hidden

    @property
    def head_params(self) -> int:
        """The output head's own parameters: none when it shares the embedding matrix."""
        return 0 if self.tied else self.vocab * self.hidden

    @property
    def linear_params_per_layer(self) -> int:
        return sum(lin.params for lin in self.linears)

    @property
    def linear_weight_params_per_layer(self) -> int:
        """Weights alone (what 4-bit / 8-bit quantization converts; biases stay 16-bit)."""
        return sum(lin.d_in * lin.d_out for lin in self.linears)

    @property
    def norm_params_per_layer(self) -> int:
        qk = 2 * self.head_dim if self.qk_norm else 0  # q_norm and k_norm weigh head_dim each
        return self.norms_per_layer * self.hidden + qk

    @property
    def total_params(self) -> int:
        per_layer = self.linear_params_per_layer + self.norm_params_per_layer
        return self.embed_params + self.head_params + self.layers * per_layer + self.hidden  # + final norm

    @property
    def linear_names(self) -> tuple[str, ...]:
        return tuple(lin.name for lin in self.linears)


def _get(config: dict, key: str, default=None):
    value = config.get(key, default)
    if value is None and default is not None:
        return default
    return value


def shape_from_config(config: dict) -> Shape:
    """Read a Hugging Face config.json dict. Raises ModelError naming a missing key."""
    if not isinstance(config, dict):
        raise ModelError("The model config must be the contents of config.json (a JSON object).")
    if isinstance(config.get("text_config"), dict):  # multimodal wrappers (gemma3) keep the LM in text_config
        config = {**config["text_config"], "tie_word_embeddings": config.get(
            "tie_word_embeddings", config["text_config"].get("tie_word_embeddings"))}
    family = str(config.get("model_type", "llama"))
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size"):
        if not isinstance(config.get(key), int) or config[key] <= 0:
            raise ModelError(f"The model's config.json has no usable {key!r}; the planner cannot size this model.")
    h = config["hidden_size"]
    heads = config["num_attention_heads"]
    kv = _get(config, "num_key_value_heads", heads)
    head_dim = _get(config, "head_dim", h // heads)
    inter = config["intermediate_size"]
    # gemma ties the head to the embedding by default; the others do not.
    tied = bool(_get(config, "tie_word_embeddings", family.startswith("gemma")))
    q_out, kv_out = heads * head_dim, kv * head_dim
    attn_bias = bool(config.get("attention_bias", False))
    mlp_bias = bool(config.get("mlp_bias", False))
    qkv_bias = attn_bias or family == "qwen2"  # qwen2 always has q/k/v biases (and none on o_proj)
    if family == "phi3":
        linears = (Linear("qkv_proj", h, q_out + 2 * kv_out, False), Linear("o_proj", q_out, h, False),
                   Linear("gate_up_proj", h, 2 * inter, False), Linear("down_proj", inter, h, False))
    else:
        linears = (Linear("q_proj", h, q_out, qkv_bias), Linear("k_proj", h, kv_out, qkv_bias),
                   Linear("v_proj", h, kv_out, qkv_bias), Linear("o_proj", q_out, h, attn_bias),
                   Linear("gate_proj", h, inter, mlp_bias), Linear("up_proj", h, inter, mlp_bias),
                   Linear("down_proj", inter, h, mlp_bias))
    return Shape(
        family=family, known_family=family in KNOWN_FAMILIES, hidden=h, layers=config["num_hidden_layers"],
        heads=heads, kv_heads=kv, head_dim=head_dim, intermediate=inter, vocab=config["vocab_size"], tied=tied,
        linears=linears,
        norms_per_layer=4 if family in ("gemma2", "gemma3_text") else 2,  # + pre/post feed-forward norms
        qk_norm=family in ("qwen3", "gemma3_text"),
        fused_qkv=family == "phi3",
        norm_fp32_weight=family.startswith("gemma"),
        logit_softcap=bool(config.get("final_logit_softcapping")),
    )


def targeted(shape: Shape, target_modules: tuple[str, ...] | list[str]) -> tuple[Linear, ...]:
    """The block's linear layers a LoRA target list selects.

    "all-linear" means every linear layer of the blocks (not the output head), whatever the model calls
    them: on phi3 that is qkv_proj / gate_up_proj, on llama q_proj ... down_proj. Names that do not exist in
    this model are ignored here; `unknown_targets` reports them.
    """
    names = {t.strip() for t in target_modules}
    if "all-linear" in names:
        return shape.linears
    return tuple(lin for lin in shape.linears if lin.name in names)


def unknown_targets(shape: Shape, target_modules) -> list[str]:
    known = set(shape.linear_names) | {"all-linear"}
    return [t for t in target_modules if t.strip() not in known]
