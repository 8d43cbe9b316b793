"""Seeded Sudoku puzzles with generalised W×H boxes.

A box is ``width`` columns wide and ``height`` rows tall; the grid side is ``width * height``.
A full grid comes from a closed-form pattern that is valid by construction, then symmetry-preserving
shuffles (rows within bands, bands, columns within stacks, stacks, digit relabelling) randomise it;
finally clues are removed. Puzzles need not have a unique solution: the scorer accepts any valid
completion that keeps every clue.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Grid = list[list[int]]


@dataclass(frozen=True)
class SudokuPuzzle:
    """One puzzle: ``grid`` has 0 for an empty cell; ``solution`` is the grid it was cut from."""

    grid: Grid
    solution: Grid
    width: int
    height: int

    @property
    def side(self) -> int:
        return self.width * self.height


def full_grid(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A random complete grid (values 1..W·H) with boxes ``width`` wide and ``height`` tall."""
    if width < 1 or height < 1:
        raise ValueError(f"box width and height must be >= 1, got {width}x{height}")
    n = width * height
    # Bands are `height` rows tall (there are `width` of them); stacks are `width` columns wide.
    r = np.arange(n)[:, None]
    c = np.arange(n)[None, :]
    base = (width * (r % height) + r // height + c) % n
    rows = np.concatenate([band * height + rng.permutation(height) for band in rng.permutation(width)])
    cols = np.concatenate([stack * width + rng.permutation(width) for stack in rng.permutation(height)])
    digits = rng.permutation(n) + 1
    return digits[base[rows][:, cols]]


def make_puzzle(width: int, height: int, rng: np.random.Generator, clue_fraction: float = 0.5) -> SudokuPuzzle:
    """Cut a puzzle from a random full grid, keeping about ``clue_fraction`` of the cells as clues."""
    if not 0.0 <= clue_fraction <= 1.0:
        raise ValueError(f"clue_fraction must be in [0, 1], got {clue_fraction}")
    solution = full_grid(width, height, rng)
    n = width * height
    n_clues = int(round(clue_fraction * n * n))
    keep = np.zeros(n * n, dtype=bool)
    keep[rng.choice(n * n, size=n_clues, replace=False)] = True
    grid = np.where(keep.reshape(n, n), solution, 0)
    return SudokuPuzzle(grid=grid.tolist(), solution=solution.tolist(), width=width, height=height)


def generate_puzzles(
    n: int, sizes: list[tuple[int, int]], seed: int, clue_fraction: float = 0.5
) -> list[SudokuPuzzle]:
    """``n`` puzzles cycling through the (width, height) box ``sizes``; identical for the same seed."""
    if not sizes:
        raise ValueError("sizes must name at least one (width, height) box size")
    rng = np.random.default_rng(seed)
    return [make_puzzle(*sizes[i % len(sizes)], rng, clue_fraction) for i in range(n)]


def check_solution(grid: object, puzzle_grid: Grid, width: int, height: int) -> str | None:
    """Why ``grid`` does not solve the puzzle, or None when it is a valid completion keeping every clue."""
    n = width * height
    try:
        arr = np.asarray(grid)
    except Exception as exc:  # ragged lists and such
        return f"output cannot be read as an {n}x{n} grid: {exc}"
    if arr.shape != (n, n):
        return f"output has shape {arr.shape}, expected ({n}, {n})"
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        return f"output must contain integers, got dtype {arr.dtype}"
    if not np.all(arr == np.round(arr)):
        return "output contains non-integer numbers"
    arr = arr.astype(np.int64)
    bad = np.argwhere((arr < 1) | (arr > n))
    if len(bad):
        r, c = bad[0]
        return f"cell ({r}, {c}) is {arr[r, c]}, expected a value in 1..{n}"
    given = np.asarray(puzzle_grid)
    changed = np.argwhere((given != 0) & (arr != given))
    if len(changed):
        r, c = changed[0]
        return f"clue at ({r}, {c}) was {given[r, c]} but the output has {arr[r, c]}"
    full = set(range(1, n + 1))
    for i in range(n):
        if set(arr[i].tolist()) != full:
            return f"row {i} is not a permutation of 1..{n}: {arr[i].tolist()}"
        if set(arr[:, i].tolist()) != full:
            return f"column {i} is not a permutation of 1..{n}: {arr[:, i].tolist()}"
    for br in range(0, n, height):
        for bc in range(0, n, width):
            box = arr[br : br + height, bc : bc + width]
            if set(box.ravel().tolist()) != full:
                return f"box at rows {br}..{br + height - 1}, columns {bc}..{bc + width - 1} repeats a digit"
    return None
