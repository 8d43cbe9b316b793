"""Sample keys identify a sample's content: the evaluation cache (keyed by sample key) must never
serve a score computed for different inputs or a different expected value."""

from __future__ import annotations

import pickle

import pytest

from langprop.examples import get_example

# For each example: small base options, and for every option a different value. A new option must be
# added here (the test below fails for an option missing from this table).
VARIANTS = {
    "sudoku": (
        {"n_train": 4, "n_val": 2, "sizes": [[2, 2], [3, 2]], "clue_fraction": 0.5, "seed": 0},
        {"n_train": 6, "n_val": 3, "sizes": [[2, 2]], "clue_fraction": 0.3, "seed": 1},
    ),
    "cartpole": (
        {"n_train": 3, "n_val": 2, "max_steps": 500, "seed": 0},
        {"n_train": 4, "n_val": 3, "max_steps": 200, "seed": 1},
    ),
}


def _content(sample) -> bytes:
    return pickle.dumps((sample.inputs, sample.expected))


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_a_key_always_means_the_same_inputs_and_expected(name):
    example = get_example(name)
    base, changed = VARIANTS[name]
    assert set(base) == {f for f in example.options().__dataclass_fields__}, "VARIANTS must list every option"
    seen: dict[str, bytes] = {}
    for option in base:
        options = example.options({**base, option: changed[option]})
        for samples in [*example.make_datasets(example.options(base)), *example.make_datasets(options)]:
            for sample in samples:
                content = _content(sample)
                assert seen.setdefault(sample.key, content) == content, (
                    f"{name}: changing task.{option} gives key {sample.key!r} different inputs/expected"
                )


def test_clue_fraction_changes_the_sudoku_keys():
    example = get_example("sudoku")
    a, _ = example.make_datasets(example.options({"n_train": 3, "n_val": 1, "clue_fraction": 0.5}))
    b, _ = example.make_datasets(example.options({"n_train": 3, "n_val": 1, "clue_fraction": 0.3}))
    assert not {s.key for s in a} & {s.key for s in b}
    again, _ = example.make_datasets(example.options({"n_train": 3, "n_val": 1, "clue_fraction": 0.5}))
    assert [s.key for s in again] == [s.key for s in a]  # stable: same options, same keys
