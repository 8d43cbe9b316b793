"""LangProp: code as trainable parameters, an LLM as the optimizer.

The public API is re-exported here lazily (PEP 562), so ``import langprop`` stays cheap — sandbox
worker processes import this package too and must not pay for the trainer's dependencies.

    from langprop import Trainer, TrainerConfig, LangPropModel, LLMClient, LLMConfig, PolicySpec
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    # policies and population
    "PolicySpec": "langprop.policy",
    "Policy": "langprop.policy",
    "NoCodeError": "langprop.policy",
    "extract_code": "langprop.policy",
    "PriorityTracker": "langprop.population",
    "Population": "langprop.population",
    # prompts
    "PromptTemplate": "langprop.prompts.template",
    "PromptError": "langprop.prompts.template",
    # sandbox and evaluation
    "SandboxLimits": "langprop.sandbox",
    "SandboxPool": "langprop.sandbox",
    "SandboxedFunction": "langprop.sandbox",
    "CallResult": "langprop.sandbox",
    "Sample": "langprop.evaluation",
    "Evaluation": "langprop.evaluation",
    "Evaluator": "langprop.evaluation",
    # llm
    "LLMClient": "langprop.llm",
    "LLMConfig": "langprop.llm",
    "Answer": "langprop.llm",
    "BudgetExceeded": "langprop.llm",
    "LLMUnavailable": "langprop.llm",
    # checkpoints
    "save_checkpoint": "langprop.checkpoint",
    "load_checkpoint": "langprop.checkpoint",
    "load_best_policy": "langprop.checkpoint",
    "CheckpointError": "langprop.checkpoint",
    # trainer
    "Trainer": "langprop.trainer",
    "TrainerConfig": "langprop.trainer",
    "LangPropModel": "langprop.trainer",
    "Callback": "langprop.trainer",
    "RunConfig": "langprop.trainer",
    "SandboxConfig": "langprop.trainer",
    "ConfigError": "langprop.trainer",
    "load_run_config": "langprop.trainer",
    # examples
    "get_example": "langprop.examples",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'langprop' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # cache: the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
