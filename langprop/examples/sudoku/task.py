"""The Sudoku example: ``solve_sudoku(sudoku, width, height)`` for generalised W×H boxes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langprop.examples.keys import sample_key
from langprop.examples.sudoku.generator import generate_puzzles
from langprop.examples.sudoku.scorer import SudokuScorer
from langprop.policy import PolicySpec
from langprop.trainer.model import LangPropModel

HERE = Path(__file__).resolve().parent
RECORDED_DIR = HERE / "recorded"

SPEC = PolicySpec(
    name="solve_sudoku",
    signature="def solve_sudoku(sudoku: list[list[int]], width: int, height: int) -> list[list[int]]",
    docstring=(
        "Solve a Sudoku puzzle whose boxes are `width` columns wide and `height` rows tall, so the grid\n"
        "has `width * height` rows and columns and uses the digits 1..width*height.\n"
        "`sudoku[r][c]` is the digit in row r, column c, or 0 for an empty cell.\n"
        "Return the completed grid as a list of lists of int: every row, every column and every box\n"
        "must contain each digit exactly once, and every non-zero cell of the input must be kept."
    ),
)


@dataclass
class SudokuOptions:
    """Data for the example (``--task.<name>`` on the command line)."""

    n_train: int = 24
    n_val: int = 12
    sizes: list[list[int]] = field(default_factory=lambda: [[2, 2], [3, 2], [2, 3], [3, 3]])
    clue_fraction: float = 0.5
    seed: int = 0


class SudokuModel(LangPropModel):
    def show_inputs(self, inputs: dict[str, Any]) -> Any:
        rows = "\n".join("    " + repr(row) + "," for row in inputs["sudoku"])
        return f"width={inputs['width']}, height={inputs['height']}, sudoku=[\n{rows}\n]"


def build_model(options: SudokuOptions, exception_score: float = -1.0) -> LangPropModel:
    return SudokuModel(
        spec=SPEC,
        scorer=SudokuScorer(exception_score=exception_score),
        template_dirs=[HERE / "templates"],
        perfect_score=1.0,
    )


def make_datasets(options: SudokuOptions) -> tuple[list[Any], list[Any]]:
    """Train and validation puzzles from disjoint seeds; the expected value is one known solution.

    Sample keys end with a digest of inputs+expected (``langprop.examples.keys``).
    """
    from langprop.evaluation import Sample

    sizes = [(int(w), int(h)) for w, h in options.sizes]

    def samples(split: str, n: int, seed: int) -> list[Any]:
        puzzles = generate_puzzles(n, sizes, seed, options.clue_fraction)
        out = []
        for i, p in enumerate(puzzles):
            inputs = {"sudoku": p.grid, "width": p.width, "height": p.height}
            # The digest of inputs+expected makes the key change with every option that changes the
            # puzzle (clue_fraction, sizes, seed), so the evaluation cache never serves old scores.
            key = sample_key(f"sudoku/{split}/{seed}/{i}/{p.width}x{p.height}", inputs, p.solution)
            out.append(Sample(key=key, inputs=inputs, expected=p.solution))
        return out

    return samples("train", options.n_train, options.seed), samples("val", options.n_val, options.seed + 1_000_003)


# Run preset: a quick end-to-end run (3 steps of 8 puzzles) with the recorded answers.
DEFAULTS: dict[str, Any] = {
    "trainer": {"epochs": 1, "batch_size": 8, "n_responses": 2, "n_top_choices": 2, "max_keep": 4, "decay": 0.5,
                "run_dir": "runs/sudoku"},
    "llm": {"replay_path": str(RECORDED_DIR)},
    "sandbox": {"call_timeout_s": 5.0},
}
