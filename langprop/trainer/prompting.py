"""Build the update prompt for one parent policy from its evaluations on a batch."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from typing import Any

from langprop.policy import Policy
from langprop.prompts.context import HistoryEntry, failure_from_evaluation, select_failures, update_context
from langprop.prompts.template import Message, PromptTemplate
from langprop.trainer.model import LangPropModel


def update_messages(
    model: LangPropModel,
    template: PromptTemplate,
    policy: Policy,
    evaluations: Sequence[Any],
    samples: Sequence[Any],
    *,
    priority: float,
    n_failures: int,
    rng: random.Random,
    history: Sequence[HistoryEntry] = (),
) -> list[Message]:
    """Messages asking the LLM to fix ``policy``: its code, score, priority, lineage history and up to
    ``n_failures`` failing samples (inputs, output, expected, exception + traceback tail, printed output).

    With ``model.perfect_score`` known, every sample below it is a candidate failure (the generic rule
    only counts samples below the batch's best, which hides e.g. two CartPole episodes that both fell).
    """
    perfect = model.perfect_score
    context = update_context(
        model.spec,
        policy,
        evaluations,
        samples,
        priority=priority,
        n_failures=n_failures if perfect is None else 0,
        rng=rng,
        history=history,
        show_inputs=model.show_inputs,
        **model.context,
    )
    if perfect is not None:
        below = [i for i, e in enumerate(evaluations) if e.score < perfect]
        picked = select_failures([evaluations[i] for i in below], n_failures, rng, include_perfect=True)
        context["failures"] = [
            failure_from_evaluation(evaluations[below[j]], samples[below[j]], model.show_inputs) for j in picked
        ]
    context["failures"] = [
        dataclasses.replace(f, output=model.show_output(f.output)) if f.status == "ok" else f
        for f in context["failures"]
    ]
    return template.render(**context)
