"""The verdict in plain words, with the rules stated here and copied into every report.

Did it learn your task? (held-out split, fine-tuned against base)
- "learned": closer to your answers than the base on at least LEARNED_SHARE of the held-out prompts AND the
  average chrF score rose by at least LEARNED_GAIN points;
- "learned a little": closer on at least LITTLE_SHARE, or the score rose by at least LITTLE_GAIN points, or
  the loss of your answers fell by at least LITTLE_LOSS_DROP;
- "did not learn": none of these. Plain-text data (no prompts to answer) is judged on the loss alone:
  LEARNED_LOSS_DROP for "learned", LITTLE_LOSS_DROP for "a little".
Did it keep what it knew? (general check set, fine-tuned against base)
- "forgot a lot": general accuracy fell by more than LOT_ACCURACY_DROP points, or the prose perplexity rose
  by more than LOT_PERPLEXITY_RISE, or the share of answers it ends by itself fell by more than LOT_STOP_DROP;
- "forgot some": accuracy fell by more than SOME_ACCURACY_DROP points, or perplexity rose by more than
  SOME_PERPLEXITY_RISE, or the stop share fell by more than SOME_STOP_DROP;
- "kept its general knowledge": otherwise.
Accuracy points are percentage points of the check questions: with ~160 questions, 5 points are 8 questions,
more than a greedy answer flipping here and there. Advice comes as plain words plus, where the app can make
the change itself, a dict of project settings ("section.key": value) for an Apply button.
"""
from __future__ import annotations

from studio.vocabulary import METHODS

LEARNED_SHARE, LEARNED_GAIN = 0.75, 10.0
LITTLE_SHARE, LITTLE_GAIN, LITTLE_LOSS_DROP = 0.5, 3.0, 0.10
LEARNED_LOSS_DROP = 0.30
SOME_ACCURACY_DROP, LOT_ACCURACY_DROP = 0.05, 0.15
SOME_PERPLEXITY_RISE, LOT_PERPLEXITY_RISE = 0.15, 0.50
SOME_STOP_DROP, LOT_STOP_DROP = 0.20, 0.50
FEW_EXAMPLES = 5  # below this many held-out prompts the task verdict rests on too little

LEARNED, LITTLE, NOT_LEARNED, NOT_MEASURED = "learned", "learned a little", "did not learn", "not measured"
KEPT, FORGOT_SOME, FORGOT_LOT = "kept", "forgot some", "forgot a lot"
LORA_LR_LOW, LORA_LR_HIGH = 1e-4, 3e-4


def thresholds() -> dict:
    return {"learned": {"closer_share": LEARNED_SHARE, "score_gain": LEARNED_GAIN, "loss_drop_text": LEARNED_LOSS_DROP},
            "learned_a_little": {"closer_share": LITTLE_SHARE, "score_gain": LITTLE_GAIN, "loss_drop": LITTLE_LOSS_DROP},
            "forgot_some": {"accuracy_drop": SOME_ACCURACY_DROP, "perplexity_rise": SOME_PERPLEXITY_RISE,
                            "stop_drop": SOME_STOP_DROP},
            "forgot_a_lot": {"accuracy_drop": LOT_ACCURACY_DROP, "perplexity_rise": LOT_PERPLEXITY_RISE,
                             "stop_drop": LOT_STOP_DROP}}


def _drop(base, tuned) -> float | None:
    return None if base in (None, 0) or tuned is None else 1 - tuned / base


def judge_task(task: dict | None, note: str = "") -> tuple[str, str]:
    """(learned / learned a little / did not learn / not measured, why in one sentence)."""
    if not task or not task.get("loss_examples"):
        return NOT_MEASURED, note or "This run holds no examples out, so whether it learned your task cannot be measured."
    loss_drop = _drop(task["base"]["answer_loss"], task["tuned"]["answer_loss"]) or 0.0
    loss_words = (f"its surprise at your answers (loss) {'fell' if loss_drop >= 0 else 'rose'} by "
                  f"{abs(loss_drop):.0%}")
    n = task["examples"]
    if not n:  # plain text: only the loss says anything
        level = LEARNED if loss_drop >= LEARNED_LOSS_DROP else LITTLE if loss_drop >= LITTLE_LOSS_DROP else NOT_LEARNED
        return level, f"On {task['loss_examples']} held-out texts {loss_words}."
    share = task["closer"] / n
    gain = task["tuned"]["score"] - task["base"]["score"]
    why = (f"Closer to your answer than the base model on {task['closer']} of {n} held-out prompts; "
           f"average score {task['base']['score']:.0f} → {task['tuned']['score']:.0f} (of 100); {loss_words}.")
    if n < FEW_EXAMPLES:
        why += f" Only {n} held-out prompts: hold more out for a firmer verdict."
    if share >= LEARNED_SHARE and gain >= LEARNED_GAIN:
        return LEARNED, why
    if share >= LITTLE_SHARE or gain >= LITTLE_GAIN or loss_drop >= LITTLE_LOSS_DROP:
        return LITTLE, why
    return NOT_LEARNED, why


def judge_general(general: dict) -> tuple[str, str]:
    """(kept / forgot some / forgot a lot, why in one sentence)."""
    base, tuned = general["base"], general["tuned"]
    acc_drop = base["accuracy"] - tuned["accuracy"]
    ppl_rise = tuned["prose_perplexity"] / base["prose_perplexity"] - 1
    stop_drop = base["stopped"] - tuned["stopped"]
    why = (f"General questions right: {base['correct']} → {tuned['correct']} of {general['questions']}; "
           f"surprise at everyday text (perplexity) {ppl_rise:+.0%}; answers it ends by itself "
           f"{base['stopped']:.0%} → {tuned['stopped']:.0%}.")
    if acc_drop > LOT_ACCURACY_DROP or ppl_rise > LOT_PERPLEXITY_RISE or stop_drop > LOT_STOP_DROP:
        return FORGOT_LOT, why
    if acc_drop > SOME_ACCURACY_DROP or ppl_rise > SOME_PERPLEXITY_RISE or stop_drop > SOME_STOP_DROP:
        return FORGOT_SOME, why
    return KEPT, why


def headline(learned: str, kept: str) -> tuple[str, str]:
    """(one sentence, tone: good / warn / bad) for the verdict card."""
    task = {LEARNED: "It learned your task", LITTLE: "It learned your task only a little",
            NOT_LEARNED: "It did not learn your task", NOT_MEASURED: "Whether it learned your task was not measured"}[learned]
    general = {KEPT: "kept its general knowledge", FORGOT_SOME: "forgot some of its general knowledge",
               FORGOT_LOT: "forgot a lot of its general knowledge"}[kept]
    joint = " and " if (learned == LEARNED) == (kept == KEPT) else " but "
    tone = "good" if learned == LEARNED and kept == KEPT else \
        "bad" if learned == NOT_LEARNED or kept == FORGOT_LOT else "warn"
    return f"{task}{joint}{general}.", tone


def advice(project, learned: str, kept: str, steps_done: int | None) -> list[dict]:
    """What to change for the next run, most useful first: [{"say": words, "changes": {"section.key": value}}].
    An empty `changes` is advice the app cannot apply by itself (it points at a page instead)."""
    m, t = project.method, project.train
    lora = not METHODS[m.method].trains_base
    out: list[dict] = []
    if kept in (FORGOT_SOME, FORGOT_LOT):
        if not lora:
            out.append({"say": "Train a LoRA instead of the full model: it changes far fewer weights, so it "
                               "keeps more of what the base model knew.", "changes": {"method.method": "lora",
                                                                                     "train.learning_rate": 2e-4}})
        if t.learning_rate > (LORA_LR_HIGH if lora else 2e-5):
            lower = _round(t.learning_rate / 2)
            out.append({"say": f"Lower the learning rate from {t.learning_rate:g} to {lower:g}: smaller steps "
                               "change the model less.", "changes": {"train.learning_rate": lower}})
        out.append(_fewer_steps(project, steps_done, "forgets less"))
        if lora and m.rank > 8:
            out.append({"say": f"Use a smaller rank ({m.rank // 2}, alpha {m.alpha // 2}): a smaller adapter has "
                               "less room to overwrite what the model knew.",
                        "changes": {"method.rank": m.rank // 2, "method.alpha": max(1, m.alpha // 2)}})
        out.append({"say": "Mix some general examples (ordinary questions with plain answers) into your data, so "
                           "training keeps practising them. Add them on the Data page.", "changes": {}})
    elif learned in (NOT_LEARNED, LITTLE):
        if lora and t.learning_rate < LORA_LR_LOW:
            out.append({"say": f"Raise the learning rate from {t.learning_rate:g} to 2e-4 (LoRA usually needs "
                               f"{LORA_LR_LOW:g} to {LORA_LR_HIGH:g}).", "changes": {"train.learning_rate": 2e-4}})
        elif not lora and t.learning_rate < 5e-6:
            out.append({"say": f"Raise the learning rate from {t.learning_rate:g} to 1e-5 (full fine-tuning "
                               "usually needs 5e-6 to 2e-5).", "changes": {"train.learning_rate": 1e-5}})
        if lora and m.alpha < 2 * m.rank:
            out.append({"say": f"Raise alpha to {2 * m.rank} (twice the rank): alpha scales how much the adapter "
                               "counts, and it is worth trying before a bigger rank.",
                        "changes": {"method.alpha": 2 * m.rank}})
        out.append(_more_steps(project, steps_done))
        out.append({"say": "Check the Data page for examples cut off at the sequence-length limit: a cut answer "
                           "teaches nothing.", "changes": {}})
    return out


def _fewer_steps(project, steps_done, why: str) -> dict:
    t = project.train
    if t.max_steps:
        fewer = max(1, t.max_steps // 2)
        return {"say": f"Train for fewer steps ({fewer} instead of {t.max_steps}): it {why}.",
                "changes": {"train.max_steps": fewer}}
    fewer = max(0.5, round(t.epochs / 2, 2))
    return {"say": f"Train for fewer epochs ({fewer:g} instead of {t.epochs:g}): it {why}.",
            "changes": {"train.epochs": fewer}}


def _more_steps(project, steps_done) -> dict:
    t = project.train
    if t.max_steps:
        more = max(t.max_steps * 2, 10)
        return {"say": f"Train for more steps ({more} instead of {t.max_steps}).", "changes": {"train.max_steps": more}}
    return {"say": f"Train for more epochs ({t.epochs * 2:g} instead of {t.epochs:g}).",
            "changes": {"train.epochs": t.epochs * 2}}


def _round(value: float) -> float:
    return float(f"{value:.1g}")


def verdict(project, task: dict | None, general: dict, steps_done: int | None, note: str = "") -> dict:
    learned, learned_why = judge_task(task, note)
    kept, kept_why = judge_general(general)
    sentence, tone = headline(learned, kept)
    tips = advice(project, learned, kept, steps_done)
    if learned == NOT_MEASURED and not tips:
        tips = [{"say": "Hold out a tenth of your data (eval fraction 0.1 on the Data page) so the next run can be "
                        "checked on examples it never trained on.", "changes": {"data.eval_fraction": 0.1}}]
    return {"learned": learned, "learned_why": learned_why, "kept": kept, "kept_why": kept_why,
            "headline": sentence, "tone": tone, "advice": tips,
            "fix": next((a["changes"] for a in tips if a["changes"]), None), "thresholds": thresholds()}
