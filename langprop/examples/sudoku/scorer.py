"""Sudoku scorer: 1 for a valid completion that keeps every clue, 0 otherwise (runs in the trusted parent)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langprop.examples.sudoku.generator import check_solution


@dataclass
class SudokuScorer:
    """Scores ``solve_sudoku`` outputs. The reference forgot the clues; this one checks them."""

    exception_score: float = -1.0
    version: str = "sudoku-v1"

    def __call__(self, sample: Any, call: Any) -> tuple[float, str]:
        if call.status != "ok":
            return self.exception_score, call.describe()
        inputs = sample.inputs
        problem = check_solution(call.output, inputs["sudoku"], inputs["width"], inputs["height"])
        if problem is None:
            return 1.0, "valid solution"
        return 0.0, problem
