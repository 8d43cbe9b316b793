"""Runnable LangProp examples, by name: ``sudoku`` and ``cartpole``.

Each example has a function spec, a scorer (run in the trusted parent), example templates that
override the generic task description, a data/episode generator, a run preset, and recorded
fixture answers under ``<example>/recorded/``. Those fixture answers are HAND-WRITTEN by a person
to stand in for an LLM (tests and the offline demo); no LLM produced them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langprop.trainer.config import ConfigError
from langprop.trainer.model import LangPropModel

__all__ = ["Example", "EXAMPLES", "get_example"]


@dataclass(frozen=True)
class Example:
    """A named task: build its model and data from options; ``defaults`` is its run preset."""

    name: str
    options_cls: type
    build_model_fn: Callable[[Any, float], LangPropModel]
    make_datasets_fn: Callable[[Any], tuple[list[Any], list[Any]]]
    defaults: dict[str, Any]
    recorded_dir: Path

    def options(self, values: dict[str, Any] | None = None) -> Any:
        """The options dataclass from ``task.*`` values; unknown names are a ConfigError."""
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(self.options_cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"task.{unknown[0]}: unknown option for example {self.name!r} (known: {sorted(known)})")
        try:
            return self.options_cls(**values)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"task: {exc}") from None

    def build_model(self, options: Any, exception_score: float = -1.0) -> LangPropModel:
        return self.build_model_fn(options, exception_score)

    def make_datasets(self, options: Any) -> tuple[list[Any], list[Any]]:
        try:
            return self.make_datasets_fn(options)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"task: cannot build the {self.name} data: {exc}") from None


def _sudoku() -> Example:
    from langprop.examples.sudoku import task

    return Example("sudoku", task.SudokuOptions, task.build_model, task.make_datasets, task.DEFAULTS, task.RECORDED_DIR)


def _cartpole() -> Example:
    from langprop.examples.cartpole import task

    return Example(
        "cartpole", task.CartPoleOptions, task.build_model, task.make_datasets, task.DEFAULTS, task.RECORDED_DIR
    )


EXAMPLES: dict[str, Callable[[], Example]] = {"sudoku": _sudoku, "cartpole": _cartpole}


def get_example(name: str) -> Example:
    """The example called ``name``; a ConfigError lists the known names otherwise."""
    try:
        factory = EXAMPLES[name]
    except KeyError:
        raise ConfigError(f"example: unknown example {name!r} (known: {', '.join(sorted(EXAMPLES))})") from None
    return factory()
