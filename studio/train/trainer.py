"""The Hugging Face Trainer as the studio runs it: packed or padded batches, the lean loss, checkpointing.

`build_trainer` is shared by the training worker and bench/throughput.py, so the benchmark measures exactly
what users run.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from pathlib import Path

from studio.train.batching import ExampleDataset, PackedCollator, PackedDataset, PaddedCollator
from studio.train.loss import lean_loss_head, linear_cross_entropy_sum
from studio.train.rank_batches import BatchOrder, shared_out


def make_batches(project, examples, pad_token_id: int, with_seq_lens: bool = False):
    """(dataset, collator, examples per DataLoader batch) for `examples` under the project's batching."""
    t = project.train
    if t.packing:
        return PackedDataset(examples, t.batch_size * t.max_seq_len), PackedCollator(with_seq_lens), 1
    return ExampleDataset(examples), PaddedCollator(pad_token_id), t.batch_size


def batches_per_epoch(project, dataset) -> int:
    per_batch = 1 if isinstance(dataset, PackedDataset) else project.train.batch_size
    return max(1, math.ceil(len(dataset) / per_batch))


def schedule(project, batches: int) -> tuple[int, int, int]:
    """(total optimizer steps, eval interval, save interval) for `batches` micro-batches per epoch."""
    t = project.train
    steps = t.max_steps or max(1, math.ceil(t.epochs * batches / t.grad_accumulation))
    eval_every = t.eval_steps or max(1, steps // 10)
    save_every = t.save_steps or max(1, steps // 5)
    return steps, eval_every, save_every


def packing_isolates_examples(model, with_seq_lens: bool) -> bool:
    """Check on the real model that examples packed in one row cannot see each other: the second example's
    logits in the row [A, B] must be B's logits alone. A few tokens, two forward passes."""
    import torch

    device = next(model.parameters()).device
    a, b = [5, 6, 7, 8], [9, 10, 11]
    packed = {"input_ids": torch.tensor([a + b], device=device),
              "position_ids": torch.tensor([list(range(len(a))) + list(range(len(b)))], device=device)}
    if with_seq_lens:
        packed.update(cu_seq_lens_q=torch.tensor([0, 4, 7], dtype=torch.int32, device=device),
                      cu_seq_lens_k=torch.tensor([0, 4, 7], dtype=torch.int32, device=device),
                      max_length_q=4, max_length_k=4)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            together = model(**packed, use_cache=False).logits[0, len(a):].float()
            alone = model(input_ids=torch.tensor([b], device=device), use_cache=False).logits[0].float()
    finally:
        model.train(was_training)
    return bool(((together - alone).abs().max() <= 0.02 * alone.abs().max()).item())


def _trainer_class():
    from transformers import Trainer

    class StudioTrainer(Trainer):
        """Computes the loss with the chunked head (studio.train.loss) where the model allows it."""

        def __init__(self, *args, lean_loss: bool = True, **kwargs):
            super().__init__(*args, **kwargs)
            self.lean = lean_loss_head(self.model) if lean_loss else None
            if self.lean is not None:
                # The loss below is already divided by the targets of the whole accumulated batch
                # (num_items_in_batch), so the Trainer must neither divide it again nor count differently.
                self.model_accepts_loss_kwargs = True
                self.loss_is_scaled_for_ga = True

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if not model.training:
                # evaluation: each batch's own mean, as on one GPU (with several, the Trainer would weigh
                # batches evaluated at the same time by the targets of all of them)
                num_items_in_batch = None
            if self.lean is None:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            decoder, head, softcap = self.lean
            inputs = dict(inputs)
            labels = inputs.pop("labels")

            def lean_forward(**kwargs):
                hidden = decoder(**kwargs, use_cache=False).last_hidden_state
                return linear_cross_entropy_sum(hidden, head.weight, labels, softcap)

            # Through the (DDP- or FSDP-wrapped) model's own call, with its forward swapped for ours: the
            # wrapper then synchronizes the gradients (DDP) or gathers the head and embeddings (FSDP).
            with swapped_forward(self.accelerator.unwrap_model(model), lean_forward):
                total, count = model(**inputs)
            targets = num_items_in_batch if num_items_in_batch is not None else count
            loss = total / max(targets, 1) if isinstance(targets, int) else total / targets.clamp(min=1)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                # divided by the targets of every process; DDP averages the gradients over processes
                loss = loss * self.accelerator.num_processes
            return (loss, {"loss": loss}) if return_outputs else loss

        def _get_train_sampler(self, train_dataset=None):
            dataset = train_dataset if train_dataset is not None else self.train_dataset
            if hasattr(dataset, "batches"):  # packed: the same batch order on one GPU and on N
                return BatchOrder(len(dataset.batches), getattr(dataset, "ranks", 1), self.args.seed)
            return super()._get_train_sampler(train_dataset)

    return StudioTrainer


@contextmanager
def swapped_forward(module, forward):
    """Calls of `module` run `forward` instead of its own, hooks and wrappers around it included."""
    module.forward = forward
    try:
        yield
    finally:
        del module.forward  # the class's own forward again


def build_trainer(project, model, train_examples, eval_examples, pad_token_id: int, device: str, precision: str,
                  output_dir: Path, callbacks=(), steps: int | None = None, sharded: bool = False):
    """A ready Trainer for this project; `steps` overrides the schedule (the benchmark's fixed step count).
    In a multi-GPU run (studio.train.distributed) each process builds the same Trainer; `sharded`: FSDP."""
    from transformers import TrainingArguments

    from studio.train import distributed
    from studio.train.checkpointing import enable_checkpointing

    from studio.train.attention import NAME as VARLEN

    t = project.train
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    varlen = getattr(base.config, "_attn_implementation", None) == VARLEN  # it reads the examples' lengths
    # Training needs no key/value cache, and with one transformers does not look for packed rows in the
    # position ids, so examples in a row would attend to each other.
    base.config.use_cache = False
    if t.packing and not packing_isolates_examples(model, varlen):
        t.packing = False  # the caller sees it in project.train.packing and says so
    train_set, collator, per_batch = make_batches(project, train_examples, pad_token_id, with_seq_lens=varlen)
    eval_set = make_batches(project, eval_examples, pad_token_id, varlen)[0] if eval_examples else None
    total, eval_every, save_every = schedule(project, batches_per_epoch(project, train_set))
    if steps is not None:
        total, eval_every, save_every = steps, steps, steps
    ranks = distributed.world_size()
    train_set = shared_out(train_set, ranks)  # packed batches: each process trains on its share of every batch
    if ranks > 1 and not t.packing:  # padded: the global batch is the same examples per step, shared out
        per_batch = max(1, -(-per_batch // ranks))
    if t.gradient_checkpointing:  # on the layers themselves, not through TrainingArguments, to allow offload
        enable_checkpointing(model, offload=t.offload_checkpoints)
    args = TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=per_batch,
        per_device_eval_batch_size=per_batch,
        gradient_accumulation_steps=t.grad_accumulation,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=int(t.warmup_ratio * total),
        weight_decay=t.weight_decay,
        max_steps=total,
        logging_steps=t.logging_steps,
        eval_strategy="steps" if eval_set is not None else "no",
        eval_steps=eval_every,
        save_strategy="steps" if steps is None else "no",
        save_steps=save_every,
        save_total_limit=2,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        optim=t.optimizer,
        seed=t.seed,
        report_to=[],
        remove_unused_columns=False,
        prediction_loss_only=True,
        dataloader_num_workers=0,
        # a packed batch has no padding; a padded one counts its attention mask
        include_num_input_tokens_seen="all" if t.packing else "non_padding",
        use_cpu=device == "cpu",
        disable_tqdm=True,
        **distributed.trainer_arguments(sharded),
    )
    trainer = _trainer_class()(model=model, args=args, train_dataset=train_set, eval_dataset=eval_set,
                               data_collator=collator, callbacks=list(callbacks), lean_loss=t.lean_loss)
    return trainer, total
