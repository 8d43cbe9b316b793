"""The context contract of the generic ``setup.j2`` / ``update.j2`` templates, as code.

Variables (all optional unless marked *required*):

``setup.j2``
    ``spec`` (*required*, :class:`~langprop.policy.PolicySpec`) — name, signature, docstring.
    ``task`` (str) — free-text task description.  ``task_template`` (str) — name of a template to
    include as the task description instead (rendered with the same context).
    ``examples`` (list of :class:`Example`) — inputs and expected outputs to show.
    ``instructions`` (str) — extra instructions appended before the answer-format request.

``update.j2`` — everything above, plus
    ``policy`` (*required*, :class:`~langprop.policy.Policy`) — its ``source`` is shown.
    ``score`` (float) — mean score on the batch.  ``priority`` (float) — current priority.
    ``n_samples`` / ``n_errors`` (int) — batch size and number of calls that raised, timed out
    or crashed.
    ``failures`` (list of :class:`FailureExample`) — several failing examples.
    ``all_outputs_identical`` (bool) — every call returned the same output (a constant policy).
    ``history`` (list of :class:`HistoryEntry`) — earlier attempts in this lineage, oldest first.

:func:`update_context` builds that dict from evaluations (duck-typed on the ``Evaluation`` /
``Sample`` / ``CallResult`` shapes of ``langprop.evaluation`` and ``langprop.sandbox``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from langprop.policy import Policy, PolicySpec

__all__ = [
    "Example",
    "FailureExample",
    "HistoryEntry",
    "select_failures",
    "outputs_identical",
    "failure_from_evaluation",
    "setup_context",
    "update_context",
]


@dataclass(frozen=True)
class Example:
    """An input shown in a prompt (``inputs`` is a kwargs dict or pre-formatted text)."""

    inputs: Any
    expected: Any = None
    note: str = ""


@dataclass(frozen=True)
class FailureExample:
    """One failing call, with everything the LLM needs to fix it."""

    inputs: Any
    expected: Any = None
    output: Any = None
    status: str = "ok"  # "ok" | "exception" | "timeout" | "crash" (CallResult.status)
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None  # tail only
    stdout: str = ""
    feedback: str = ""  # the scorer's explanation
    score: float | None = None


@dataclass(frozen=True)
class HistoryEntry:
    """An earlier attempt in the lineage (oldest first in ``history``)."""

    policy_id: str
    generation: int
    score: float | None = None
    priority: float | None = None
    note: str = ""  # e.g. the main failure of that attempt
    code: str | None = None  # optional: the earlier source


def outputs_identical(evaluations: Sequence[Any]) -> bool:
    """True when there are >= 2 calls, all returned normally, and all outputs are equal."""
    calls = [ev.call for ev in evaluations]
    if len(calls) < 2 or any(call.status != "ok" for call in calls):
        return False
    first = repr(calls[0].output)  # repr: numpy arrays have no plain ==
    return all(repr(call.output) == first for call in calls[1:])


def select_failures(
    evaluations: Sequence[Any], n: int, rng: random.Random, include_perfect: bool = False
) -> list[int]:
    """Indices of up to ``n`` lowest-scoring evaluations, ties broken by ``rng``.

    Unless ``include_perfect``, evaluations that reached the best score of the batch are skipped
    when the batch is not uniform (they are not failures). Returned lowest score first.
    """
    if n <= 0 or not evaluations:
        return []
    scores = [float(ev.score) for ev in evaluations]
    best = max(scores)
    candidates = list(range(len(evaluations)))
    if not include_perfect and min(scores) < best:
        candidates = [i for i in candidates if scores[i] < best]
    tie = {i: rng.random() for i in candidates}
    candidates.sort(key=lambda i: (scores[i], tie[i]))
    return candidates[:n]


def failure_from_evaluation(
    evaluation: Any, sample: Any, show_inputs: Callable[[Any], Any] | None = None
) -> FailureExample:
    """A :class:`FailureExample` from an ``Evaluation`` and its ``Sample``.

    ``show_inputs`` lets a task format its inputs for the prompt (e.g. render a scene as text).
    """
    call = evaluation.call
    inputs = show_inputs(sample.inputs) if show_inputs else sample.inputs
    return FailureExample(
        inputs=inputs,
        expected=sample.expected,
        output=call.output,
        status=call.status,
        error_type=call.error_type,
        error_message=call.error_message,
        traceback=call.traceback,
        stdout=call.stdout or "",
        feedback=evaluation.feedback or "",
        score=float(evaluation.score),
    )


def setup_context(
    spec: PolicySpec,
    task: str | None = None,
    task_template: str | None = None,
    examples: Sequence[Example] = (),
    instructions: str | None = None,
) -> dict[str, Any]:
    """The context for ``setup.j2`` (optional values left out so templates test ``is defined``)."""
    context: dict[str, Any] = {"spec": spec, "examples": list(examples)}
    for key, value in (("task", task), ("task_template", task_template), ("instructions", instructions)):
        if value is not None:
            context[key] = value
    return context


def update_context(
    spec: PolicySpec,
    policy: Policy,
    evaluations: Sequence[Any],
    samples: Sequence[Any],
    *,
    priority: float | None = None,
    n_failures: int = 3,
    rng: random.Random | None = None,
    history: Sequence[HistoryEntry] = (),
    show_inputs: Callable[[Any], Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The context for ``update.j2`` from one policy's evaluations on a batch.

    ``evaluations[i]`` must belong to ``samples[i]``. ``extra`` (task, task_template, examples,
    instructions, or any task-specific variable) is passed through.
    """
    if len(evaluations) != len(samples):
        raise ValueError(f"{len(evaluations)} evaluations for {len(samples)} samples")
    rng = rng or random.Random(0)
    scores = [float(ev.score) for ev in evaluations]
    chosen = select_failures(evaluations, n_failures, rng)
    context: dict[str, Any] = {
        "spec": spec,
        "policy": policy,
        "score": sum(scores) / len(scores) if scores else 0.0,
        "n_samples": len(samples),
        "n_errors": sum(1 for ev in evaluations if ev.call.status != "ok"),
        "failures": [failure_from_evaluation(evaluations[i], samples[i], show_inputs) for i in chosen],
        "all_outputs_identical": outputs_identical(evaluations),
        "history": list(history),
        "examples": [],
    }
    if priority is not None:
        context["priority"] = float(priority)
    context.update(extra)
    return context
