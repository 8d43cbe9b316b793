"""``LangPropModel``: the task a trainer optimises — function spec, prompts, scorer, harness, sample display."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langprop.policy import PolicySpec
from langprop.prompts.template import show


@dataclass
class LangPropModel:
    """Everything task-specific the generic loop needs.

    ``setup_template``/``update_template`` are looked up in ``template_dirs`` first, then in the
    package templates. ``harness`` is a ``"module:function"`` run inside the sandbox worker as
    ``harness(policy_fn, inputs)`` (e.g. an environment episode); None calls ``policy_fn(**inputs)``.
    ``perfect_score``: a policy scoring it on every sample of a batch is not sent for an update.
    ``context`` adds task variables to both prompts (e.g. a task description).
    Subclass and override the ``format_*`` methods to control how samples appear in prompts.
    """

    spec: PolicySpec
    scorer: Any  # langprop.evaluation.Scorer
    setup_template: str = "setup.j2"
    update_template: str = "update.j2"
    template_dirs: list[Path] = field(default_factory=list)
    harness: str | None = None
    perfect_score: float | None = None
    context: dict[str, Any] = field(default_factory=dict)

    def format_inputs(self, sample: Any) -> str:
        return "\n".join(f"{name} = {show(value)}" for name, value in sample.inputs.items())

    def format_output(self, sample: Any, output: Any) -> str:
        return show(output)

    def format_expected(self, sample: Any) -> str | None:
        return None if sample.expected is None else show(sample.expected)
