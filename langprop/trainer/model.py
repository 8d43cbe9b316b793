"""``LangPropModel``: the task a trainer optimises — function spec, prompts, scorer, harness, sample display."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langprop.policy import PolicySpec


@dataclass
class LangPropModel:
    """Everything task-specific the generic loop needs.

    ``setup_template``/``update_template`` are looked up in ``template_dirs`` first, then in the
    package templates. ``harness`` is a ``"module:function"`` run inside the sandbox worker as
    ``harness(policy_fn, inputs)`` (e.g. an environment episode); None calls ``policy_fn(**inputs)``.
    ``perfect_score``: a policy scoring it on every sample of a batch is not sent for an update.
    ``context`` may hold ``task``/``task_template``/``instructions``/``examples`` (see
    ``langprop.prompts.context``). Override ``show_inputs``/``show_output`` to control how samples appear in prompts.
    """

    spec: PolicySpec
    scorer: Any  # langprop.evaluation.Scorer
    setup_template: str = "setup.j2"
    update_template: str = "update.j2"
    template_dirs: list[Path] = field(default_factory=list)
    harness: str | None = None
    perfect_score: float | None = None
    context: dict[str, Any] = field(default_factory=dict)

    def show_inputs(self, inputs: dict[str, Any]) -> Any:
        """What a failing example's ``Inputs:`` shows (the kwargs dict by default)."""
        return inputs

    def show_output(self, output: Any) -> Any:
        """What a failing example's ``Your output:`` shows (the raw output by default)."""
        return output
