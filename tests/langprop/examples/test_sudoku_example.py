"""Sudoku example: seeded W×H puzzle generation and a scorer that also checks the clues."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from langprop.examples import get_example
from langprop.examples.sudoku.generator import check_solution, full_grid, generate_puzzles, make_puzzle
from langprop.examples.sudoku.scorer import SudokuScorer
from langprop.sandbox.types import CallResult
from langprop.trainer.config import ConfigError


class _Sample:
    def __init__(self, grid, width, height):
        self.key = "s"
        self.inputs = {"sudoku": grid, "width": width, "height": height}
        self.expected = None


@pytest.mark.parametrize("width,height", [(2, 2), (3, 2), (2, 3), (3, 3), (4, 3), (4, 4)])
def test_full_grids_are_valid_for_rectangular_boxes(width, height):
    rng = np.random.default_rng(7)
    for _ in range(5):
        grid = full_grid(width, height, rng)
        n = width * height
        assert grid.shape == (n, n)
        assert check_solution(grid, np.zeros((n, n), dtype=int).tolist(), width, height) is None


def test_puzzles_are_seeded_and_keep_the_clue_fraction():
    a = generate_puzzles(6, [(3, 2), (2, 3)], seed=11, clue_fraction=0.4)
    b = generate_puzzles(6, [(3, 2), (2, 3)], seed=11, clue_fraction=0.4)
    c = generate_puzzles(6, [(3, 2), (2, 3)], seed=12, clue_fraction=0.4)
    assert [p.grid for p in a] == [p.grid for p in b]
    assert [p.grid for p in a] != [p.grid for p in c]
    for p in a:
        grid = np.asarray(p.grid)
        assert (grid != 0).sum() == round(0.4 * p.side**2)
        # every clue comes from the solution it was cut from
        assert np.all((grid == 0) | (grid == np.asarray(p.solution)))
    assert [(p.width, p.height) for p in a[:2]] == [(3, 2), (2, 3)]


def test_scorer_accepts_a_solution_and_rejects_an_overwritten_clue():
    puzzle = make_puzzle(3, 2, np.random.default_rng(3), clue_fraction=0.5)
    scorer = SudokuScorer(exception_score=-1.0)
    sample = _Sample(puzzle.grid, 3, 2)
    assert scorer(sample, CallResult("ok", output=puzzle.solution)) == (1.0, "valid solution")
    # Relabelling two digits keeps the grid a valid Sudoku but changes clues: the reference scored this 1.
    sol = np.asarray(puzzle.solution)
    relabelled = np.where(sol == 1, 2, np.where(sol == 2, 1, sol))
    assert check_solution(relabelled, np.zeros_like(sol).tolist(), 3, 2) is None
    score, feedback = scorer(sample, CallResult("ok", output=relabelled.tolist()))
    assert score == 0.0
    assert "clue at" in feedback


@pytest.mark.parametrize(
    "output,needle",
    [
        ([[1, 2], [2, 1]], "shape"),
        ("not a grid", "shape"),
        ([[0] * 6 for _ in range(6)], "expected a value in 1..6"),
    ],
)
def test_scorer_explains_invalid_outputs(output, needle):
    puzzle = make_puzzle(3, 2, np.random.default_rng(4), clue_fraction=0.0)
    score, feedback = SudokuScorer()(_Sample(puzzle.grid, 3, 2), CallResult("ok", output=output))
    assert score == 0.0 and needle in feedback


def test_scorer_detects_duplicate_in_a_box():
    # A Latin square (rows and columns fine) whose 2x2 boxes repeat digits.
    latin = [[(r + c) % 4 + 1 for c in range(4)] for r in range(4)]
    assert "box" in check_solution(latin, [[0] * 4 for _ in range(4)], 2, 2)


def test_failed_calls_score_the_exception_score():
    call = CallResult("timeout", error_message="exceeded 2.0 s")
    score, feedback = SudokuScorer(exception_score=-3.0)(_Sample([[0]], 1, 1), call)
    assert score == -3.0 and "timeout" in feedback


def test_example_options_and_datasets():
    example = get_example("sudoku")
    options = example.options({"n_train": 5, "n_val": 3, "sizes": [[2, 2]]})
    train, val = example.make_datasets(options)
    assert len(train) == 5 and len(val) == 3
    assert {s.key for s in train}.isdisjoint({s.key for s in val})
    assert train[0].inputs["width"] == 2 and len(train[0].inputs["sudoku"]) == 4
    with pytest.raises(ConfigError, match="task.n_trian"):
        example.options({"n_trian": 3})
    with pytest.raises(ConfigError, match="unknown example 'chess'"):
        get_example("chess")


@pytest.mark.parametrize("name", ["sudoku", "cartpole"])
def test_recorded_answers_are_labelled_hand_written(name):
    files = sorted(Path(get_example(name).recorded_dir).glob("*.yaml"))
    assert files
    for path in files:
        assert path.read_text(encoding="utf-8").startswith("# HAND-WRITTEN")
