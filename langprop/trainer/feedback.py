"""Failure feedback for update prompts: which samples to show and how each one is described."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from langprop.trainer.model import LangPropModel


@dataclass
class FailureExample:
    """One sample a policy did badly on, as the update prompt shows it."""

    sample_key: str
    score: float
    status: str  # ok | exception | timeout | crash
    inputs: str
    output: str | None
    expected: str | None
    feedback: str
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    stdout: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _clip(text: str | None, max_chars: int) -> str | None:
    if text is None or len(text) <= max_chars:
        return text
    return text[:max_chars] + f"\n... [truncated, {len(text) - max_chars} more characters]"


def _output_key(evaluation: Any) -> str:
    try:
        return json.dumps(evaluation.call.output, sort_keys=True, default=repr)
    except (TypeError, ValueError):
        return repr(evaluation.call.output)


def select_failures(
    model: LangPropModel,
    evaluations: Sequence[Any],
    samples: Sequence[Any],
    n: int,
    rng: random.Random,
    max_chars: int = 1500,
) -> list[FailureExample]:
    """The ``n`` lowest-scoring samples below the model's perfect score (seeded random tie-break).

    Distinct failure kinds are preferred: at most one example per (status, error type) pair is taken
    before repeats, so a prompt does not show three copies of the same traceback.
    """
    by_key = {s.key: s for s in samples}
    failing = [e for e in evaluations if model.perfect_score is None or e.score < model.perfect_score]
    ties = {id(e): rng.random() for e in failing}
    failing.sort(key=lambda e: (e.score, ties[id(e)]))
    first: list[Any] = []
    rest: list[Any] = []
    seen: set[tuple[str, str | None]] = set()
    for e in failing:
        kind = (e.call.status, e.call.error_type)
        (rest if kind in seen else first).append(e)
        seen.add(kind)
    chosen = (first + rest)[:n]
    chosen.sort(key=lambda e: (e.score, ties[id(e)]))
    examples = []
    for e in chosen:
        sample = by_key[e.sample_key]
        call = e.call
        examples.append(
            FailureExample(
                sample_key=e.sample_key,
                score=float(e.score),
                status=call.status,
                inputs=_clip(model.format_inputs(sample), max_chars) or "",
                output=_clip(model.format_output(sample, call.output), max_chars) if call.status == "ok" else None,
                expected=_clip(model.format_expected(sample), max_chars),
                feedback=_clip(e.feedback, max_chars) or "",
                error_type=call.error_type,
                error_message=_clip(call.error_message, max_chars),
                traceback=_clip(call.traceback, max_chars),
                stdout=_clip(call.stdout, max_chars) or "",
            )
        )
    return examples


def outputs_identical(evaluations: Sequence[Any]) -> bool:
    """True when every call returned the same output (a hint that the policy ignores its inputs)."""
    if len(evaluations) < 2 or any(e.call.status != "ok" for e in evaluations):
        return False
    return len({_output_key(e) for e in evaluations}) == 1
