"""Padding-free packing, the chunked loss and offloaded checkpointing, checked against the plain ways on CPU."""
import json
import random

import pytest
import torch

from studio.data.tokenize import IGNORE, Example
from studio.train.batching import PackedCollator, PackedDataset, PaddedCollator, token_budget_batches
from studio.train.loss import lean_loss_head, linear_cross_entropy_sum

VOCAB = 320


def tiny_llama(seed=0, **extra):
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
                         use_cache=False, **extra)  # as build_trainer sets it: a cache hides the packing
    return LlamaForCausalLM(config).float()


def examples(lengths, seed=0):
    """Chat-like examples: the first third of each is prompt (IGNORE), the rest is trained on."""
    rng = random.Random(seed)
    out = []
    for n in lengths:
        ids = [rng.randrange(VOCAB) for _ in range(n)]
        labels = [IGNORE if i < n // 3 else t for i, t in enumerate(ids)]
        out.append(Example(ids, labels))
    return out


def features(exs):
    return [{"input_ids": e.input_ids, "labels": e.labels} for e in exs]


def test_token_budget_batches_hold_every_example_once_and_fill_up():
    rng = random.Random(1)
    lengths = [rng.randint(64, 1024) for _ in range(500)]
    batches = token_budget_batches(lengths, 4096)
    assert sorted(i for b in batches for i in b) == list(range(500))
    sums = [sum(lengths[i] for i in b) for b in batches]
    assert max(sums) <= 4096
    # best-fit decreasing leaves little room: the batches together are at least 90 % full
    assert sum(lengths) / (4096 * len(batches)) > 0.9
    assert token_budget_batches([5000, 10], 4096) == [[0], [1]]  # too long for the budget: alone
    with pytest.raises(ValueError):
        token_budget_batches([1], 0)


def test_packed_row_layout():
    exs = examples([5, 3, 4])
    batch = PackedCollator(with_seq_lens=True)([features(exs)])
    assert batch["input_ids"].shape == (1, 12)
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 4, 0, 1, 2, 0, 1, 2, 3]]
    labels = batch["labels"][0].tolist()
    assert labels[0] == labels[5] == labels[8] == IGNORE  # no example learns the next one's first token
    assert labels[3:5] == exs[0].labels[3:5]
    assert batch["cu_seq_lens_q"].tolist() == [0, 5, 8, 12] and batch["max_length_q"] == 5
    assert "attention_mask" not in batch  # a mask would hide the packing from transformers
    dataset = PackedDataset(exs, token_budget=9)
    assert sorted(len(b) for b in dataset.batches) == [1, 2] and len(dataset) == 2


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_examples_in_one_row_do_not_attend_to_each_other(attn):
    model = tiny_llama()
    model.config._attn_implementation = attn
    model.eval()
    a, b, c = examples([7, 9, 6])
    row = PackedCollator()([features([a, b, c])])
    changed = Example([(t + 1) % VOCAB for t in a.input_ids], a.labels)
    row2 = PackedCollator()([features([changed, b, c])])
    with torch.no_grad():
        out1 = model(input_ids=row["input_ids"], position_ids=row["position_ids"]).logits[0]
        out2 = model(input_ids=row2["input_ids"], position_ids=row2["position_ids"]).logits[0]
        alone = model(input_ids=torch.tensor([b.input_ids])).logits[0]
    assert not torch.allclose(out1[:7], out2[:7])  # A's own logits did change
    assert torch.allclose(out1[7:], out2[7:], atol=1e-6)  # B and C did not notice
    assert torch.allclose(out1[7:16], alone, atol=1e-5)  # B in the row is B on its own


def test_packing_is_checked_on_the_real_model():
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from studio.train.trainer import packing_isolates_examples
    model = tiny_llama()
    assert packing_isolates_examples(model, with_seq_lens=False)
    assert model.training  # the check leaves the model as it found it

    def causal_over_whole_row(module, q, k, v, mask, **kwargs):  # an attention that ignores packing
        return sdpa_attention_forward(module, q, k, v, None, **kwargs)

    AttentionInterface.register("causal_over_whole_row", causal_over_whole_row)
    model.config._attn_implementation = "causal_over_whole_row"
    assert not packing_isolates_examples(model, with_seq_lens=False)


def _loss_and_grads(model, batch, lean):
    model.zero_grad()
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    if lean:
        decoder, head, softcap = lean_loss_head(model)
        total, count = linear_cross_entropy_sum(decoder(**inputs).last_hidden_state, head.weight, batch["labels"],
                                                softcap, chunk=16)
        loss = total / count
    else:
        loss = model(**inputs, labels=batch["labels"]).loss
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("lean", [False, True])
def test_packed_and_padded_batches_give_the_same_loss_and_gradients(lean):
    model = tiny_llama()
    exs = examples([23, 7, 40, 15])
    padded = PaddedCollator(pad_token_id=0)(features(exs))
    packed = PackedCollator()([features(exs)])
    loss_pad, grads_pad = _loss_and_grads(model, padded, lean=False)  # the reference: transformers' own way
    loss_pack, grads_pack = _loss_and_grads(model, packed, lean=lean)
    assert abs(loss_pad - loss_pack) < 1e-5
    assert grads_pad.keys() == grads_pack.keys() and len(grads_pad) > 10
    for name, grad in grads_pad.items():
        assert torch.allclose(grad, grads_pack[name], atol=1e-5, rtol=1e-4), name


@pytest.mark.parametrize("softcap", [None, 5.0])
def test_chunked_loss_matches_cross_entropy(softcap):
    torch.manual_seed(0)
    hidden = torch.randn(3, 29, 24, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(VOCAB, 24, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, VOCAB, (3, 29))
    labels[1, :10] = IGNORE
    total, count = linear_cross_entropy_sum(hidden, weight, labels, softcap, chunk=11)
    assert count == 3 * 28 - 9
    grads = torch.autograd.grad(total / count, (hidden, weight))
    logits = hidden @ weight.T
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    ref = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1),
                                            ignore_index=IGNORE)
    ref_grads = torch.autograd.grad(ref, (hidden, weight))
    assert torch.allclose(total / count, ref, atol=1e-12)
    for g, r in zip(grads, ref_grads):
        assert torch.allclose(g, r, atol=1e-12)


def test_chunked_loss_in_bf16_stays_close_to_fp32():
    torch.manual_seed(0)
    hidden = torch.randn(2, 50, 64)
    weight = torch.randn(VOCAB, 64) / 8
    labels = torch.randint(0, VOCAB, (2, 50))
    exact = linear_cross_entropy_sum(hidden, weight, labels)[0]
    low = linear_cross_entropy_sum(hidden.bfloat16(), weight.bfloat16(), labels)[0]
    assert low.dtype == torch.float32 and abs(low.item() - exact.item()) / exact.item() < 1e-2


def _peak_allocated_during(work) -> int:
    """Peak bytes of CPU tensors allocated while `work()` runs, over what existed before (torch.profiler)."""
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        work()
    peak, stack = 0, list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        if node.tag == _EventType.Allocation:
            peak = max(peak, node.extra_fields.total_allocated)
    return peak


def test_chunked_loss_holds_one_chunk_of_logits_at_a_time():
    torch.manual_seed(0)
    n, h, vocab, chunk = 2048, 64, 8192, 256
    hidden = torch.randn(1, n, h, requires_grad=True)
    weight = torch.randn(vocab, h, requires_grad=True)
    labels = torch.randint(0, vocab, (1, n))

    def step():
        loss, _ = linear_cross_entropy_sum(hidden, weight, labels, chunk=chunk)
        loss.backward()

    chunk_logits = 4 * chunk * vocab  # 8 MiB; all the logits would be 64 MiB
    gradients = 2 * 4 * (n * h + vocab * h)  # the kept gradients and the ones backward hands out
    # one chunk's logits and log-sum-exp's temporary of the same size; never a third chunk
    assert _peak_allocated_during(step) <= 2 * chunk_logits + gradients + 2 ** 20


def test_lean_loss_covers_plain_heads_only():
    from peft import LoraConfig, get_peft_model
    model = tiny_llama()
    assert lean_loss_head(model) is not None
    wrapped = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear"))
    assert lean_loss_head(wrapped)[1] is model.lm_head  # the base model's head, found through peft
    adapted_head = get_peft_model(tiny_llama(), LoraConfig(r=4, target_modules=["q_proj", "lm_head"]))
    assert lean_loss_head(adapted_head) is None  # an adapted head is not a plain weight: keep transformers' loss


@pytest.mark.parametrize("offload", [False, True])
def test_checkpointing_and_offload_give_the_same_gradients(offload):
    from peft import LoraConfig, get_peft_model

    from studio.train.checkpointing import enable_checkpointing, offloaded_checkpoint
    batch = PackedCollator()([features(examples([30, 20, 25]))])

    def grads(checkpoint):
        model = get_peft_model(tiny_llama(), LoraConfig(r=4, lora_dropout=0.3, target_modules="all-linear"))
        if checkpoint:
            enable_checkpointing(model, offload=offload)
            layer = model.get_base_model().model.layers[0]
            assert (layer._gradient_checkpointing_func is offloaded_checkpoint) == offload
        model.train()
        torch.manual_seed(7)  # the same dropout masks in both runs; a recomputation must replay them
        return _loss_and_grads(model, batch, lean=True)

    loss_ref, ref = grads(checkpoint=False)
    loss, got = grads(checkpoint=True)
    assert abs(loss - loss_ref) < 1e-6 and ref.keys() == got.keys() and len(ref) == 28
    for name in ref:
        assert torch.allclose(ref[name], got[name], atol=1e-6), name


def _one_sgd_step(tmp_path, budget_rows: int, accumulation: int):
    from studio.project import Project
    from studio.train.trainer import build_trainer
    project = Project()
    project.train.batch_size, project.train.max_seq_len = budget_rows, 64
    project.train.grad_accumulation = accumulation
    project.train.learning_rate, project.train.warmup_ratio, project.train.lr_scheduler = 0.5, 0.0, "constant"
    model = tiny_llama()
    trainer, _ = build_trainer(project, model, examples([60, 50, 40, 30]), [], 0, "cpu", "fp32", tmp_path, steps=1)
    trainer.args.optim, trainer.args.max_grad_norm = "sgd", 0.0  # the update is then exactly -lr * gradient
    before = model.lm_head.weight.detach().clone()
    trainer.train()
    return (before - model.lm_head.weight.detach()) / 0.5, len(trainer.train_dataset)


def test_gradient_accumulation_over_packed_batches_averages_over_all_targets(tmp_path):
    whole, n_whole = _one_sgd_step(tmp_path / "a", budget_rows=4, accumulation=1)  # all 180 tokens in one row
    split, n_split = _one_sgd_step(tmp_path / "b", budget_rows=2, accumulation=2)  # two rows of up to 128
    assert (n_whole, n_split) == (1, 2)
    assert whole.abs().max() > 0
    assert torch.allclose(whole, split, atol=1e-6)


def test_worker_trains_with_packing(tmp_path, tiny_model_dir, sample_data):
    from studio.project import Project, save_project
    from studio.train import run_training
    from studio.train.events import read_events
    project = Project(name="packed")
    project.evaluate.after_training = project.evaluate.after_export = False  # checked in test_evaluate.py
    project.model.name = str(tiny_model_dir)
    project.data.train_file = str(sample_data)
    project.train.max_steps, project.train.batch_size, project.train.max_seq_len = 2, 2, 128
    project.train.gradient_checkpointing = project.train.offload_checkpoints = True
    save_project(project, tmp_path / "packed.ftproj.toml")
    run_dir, final = run_training(project)
    assert final["type"] == "done", final
    logs = " ".join(e.get("message", "") for e in read_events(run_dir / "events.jsonl") if e["type"] == "log")
    assert "packed batches of up to 256 tokens" in logs and "chunked loss" in logs
    losses = [e["loss"] for e in read_events(run_dir / "events.jsonl") if e["type"] == "metrics"]
    assert len(losses) == 2 and all(0 < loss < 20 for loss in losses)


def test_worker_turns_on_checkpointing_only_when_memory_needs_it(tmp_path, tiny_model_dir):
    from studio.plan import PlanSettings, estimate, gpu_from_numbers
    from studio.project import Project
    from studio.train.events import EventWriter, read_events
    from studio.train.worker import fit_checkpointing
    config = json.loads((tiny_model_dir / "config.json").read_text())
    project = Project()
    project.train.batch_size, project.train.max_seq_len = 16, 2048
    need = estimate(config, PlanSettings.from_project(project)).total_bytes
    with_ckpt = estimate(config, PlanSettings.from_project(project).with_changes({"gradient_checkpointing": True}))
    events = EventWriter(tmp_path / "events.jsonl")
    fit_checkpointing(project, tiny_model_dir, events, gpu_from_numbers("roomy", need + 1))
    assert not project.train.gradient_checkpointing  # it fits: keep the faster setting
    fit_checkpointing(project, tiny_model_dir, events, gpu_from_numbers("small", (need + with_ckpt.total_bytes) // 2))
    assert project.train.gradient_checkpointing and not project.train.offload_checkpoints
    project.train.gradient_checkpointing = False
    fit_checkpointing(project, tiny_model_dir, events, gpu_from_numbers("tiny", with_ckpt.total_bytes // 2))
    assert project.train.gradient_checkpointing and project.train.offload_checkpoints
    events.close()
    logs = [e["message"] for e in read_events(tmp_path / "events.jsonl")]
    assert len(logs) == 2 and "turning on gradient checkpointing" in logs[0] and "CPU offload" in logs[1]


def test_varlen_attention_is_used_only_where_it_applies():
    from studio.project import Project
    from studio.train import attention
    # on a CPU packed rows still get our attention (one example at a time), never the varlen kernel (CUDA-only)
    assert attention.pick(Project(), "cpu", torch.float32) == attention.NAME and not attention._kernel_ok

    class Layer(torch.nn.Module):
        num_key_value_groups = 2
        is_causal = True

    torch.manual_seed(0)
    q, k, v = torch.randn(1, 4, 10, 16), torch.randn(1, 2, 10, 16), torch.randn(1, 2, 10, 16)
    out, _ = attention.varlen_attention(Layer(), q, k, v, None, scaling=0.25)  # no sequence lengths: plain SDPA
    ref = torch.nn.functional.scaled_dot_product_attention(q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1),
                                                           is_causal=True, scale=0.25).transpose(1, 2)
    assert torch.allclose(out, ref, atol=1e-6)
    # a packed row the kernel cannot take (here: a sliding window) is attended one example at a time
    Layer.sliding_window = 4096
    packed, _ = attention.varlen_attention(Layer(), q, k, v, None, scaling=0.25,
                                           cu_seq_lens_q=torch.tensor([0, 4, 10]), max_length_q=6)
    second = torch.nn.functional.scaled_dot_product_attention(
        q[:, :, 4:], k[:, :, 4:].repeat_interleave(2, 1), v[:, :, 4:].repeat_interleave(2, 1), is_causal=True,
        scale=0.25).transpose(1, 2)
    assert torch.allclose(packed[:, :4], ref[:, :4], atol=1e-6) and torch.allclose(packed[:, 4:], second, atol=1e-6)
    assert not attention._plain_attention({"layer_types": ["sliding_attention", "full_attention"]})
    assert not attention._plain_attention({"attn_logit_softcapping": 50.0})
    assert attention._plain_attention({"sliding_window": 32768, "use_sliding_window": False})


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="varlen flash attention needs a CUDA GPU")
def test_cuda_varlen_attention_matches_sdpa_on_a_packed_row():
    from studio.train import attention
    assert attention.varlen_available("cuda", torch.bfloat16), "torch.nn.attention.varlen did not check out"
    attention.register()
    model = tiny_llama().to("cuda", torch.bfloat16)
    batch = PackedCollator(with_seq_lens=True)([features(examples([40, 100, 17]))])
    batch = {k: v.to("cuda") if torch.is_tensor(v) else v for k, v in batch.items()}
    outputs = {}
    for name in ("sdpa", attention.NAME):
        model.config._attn_implementation = name
        outputs[name] = model(**{k: v for k, v in batch.items() if k != "labels"}).logits.float()
    assert torch.allclose(outputs["sdpa"], outputs[attention.NAME], atol=3e-2, rtol=3e-2)
