"""Hostile policies through the real trainer: the real sandbox, the real evaluator, real checkpoints,
and the replay backend serving the HAND-WRITTEN answers of ``hostile_answers.yaml``.

Every setup answer but one is hostile (endless loop, memory bomb, ``os._exit``, KeyboardInterrupt,
gigantic print, endless recursion, NaN, wrong type, input mutation, missing module, syntax error).
The run must complete, record each hostile policy's failure with its reason, and keep the correct
policy on top; checkpoint files written before the hostile step must be left byte-identical.

Adding a case = one answer (with its ``# case: <name>`` marker) in the YAML + one EXPECTED entry.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import yaml

from langprop.checkpoint import load_checkpoint
from langprop.examples import get_example
from langprop.llm import LLMClient, LLMConfig
from langprop.trainer.callbacks import Callback
from langprop.trainer.config import SandboxConfig, TrainerConfig
from langprop.trainer.loop import Trainer

ANSWERS = Path(__file__).with_name("hostile_answers.yaml")
N_TRAIN = 2

# case -> (failures.jsonl kind, error_type, substring of the recorded reason)
EXPECTED: dict[str, tuple[str, str | None, str]] = {
    "infinite_loop": ("timeout", "Timeout", "timeout"),
    "memory_bomb": ("exception", "MemoryError", "MemoryError"),
    "os_exit": ("crash", "WorkerCrash", "status 1"),
    "keyboard_interrupt": ("exception", "KeyboardInterrupt", "KeyboardInterrupt"),
    "gigantic_print": ("wrong_output", None, "shape"),
    "deep_recursion": ("exception", "RecursionError", "recursion"),
    "nan": ("wrong_output", None, "shape"),
    "wrong_type": ("wrong_output", None, "shape"),
    "mutate_input": ("wrong_output", None, "clue at"),
    "missing_module": ("exception", "ModuleNotFoundError", "langprop_no_such_module"),
    "syntax_error": ("exception", "SyntaxError", "never closed"),
    # the sandbox jail: the run dir does not exist for a policy, so it only returns its input
    "vandal": ("wrong_output", None, "expected a value"),
}
WINNER = "correct"
MARKER = re.compile(r"#\s*case:\s*(\w+)")


def _cases_in_yaml() -> list[str]:
    answers = yaml.safe_load(ANSWERS.read_text())["entries"][0]["answers"]
    return [MARKER.search(a).group(1) for a in answers]


class _FreezeStepZero(Callback):
    """Reads every file of the step-0 checkpoint as soon as it is written (before any batch runs)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def on_checkpoint(self, trainer, step, path) -> None:
        if step == 0:
            root = Path(path)
            self.files = {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_hostile_setup_policies_fail_with_reasons_and_the_correct_one_wins(tmp_path):
    cases = _cases_in_yaml()
    assert sorted(cases) == sorted([*EXPECTED, WINNER]), "every YAML case needs one EXPECTED entry"
    example = get_example("sudoku")
    options = example.options({"n_train": N_TRAIN, "n_val": 2, "sizes": [[2, 2]]})
    train, val = example.make_datasets(options)
    pristine = copy.deepcopy((train, val))
    config = TrainerConfig(epochs=1, batch_size=N_TRAIN, n_setup_responses=len(cases), n_responses=1,
                           n_top_choices=1, max_keep=4, run_dir=str(tmp_path), progress=False, seed=0)
    client = LLMClient(LLMConfig(backend="replay", replay_path=str(ANSWERS)), log_dir=tmp_path / "llm")
    frozen = _FreezeStepZero()
    trainer = Trainer(example.build_model(options), client, config, callbacks=[frozen],
                      sandbox=SandboxConfig(n_workers=2, call_timeout_s=0.5, memory_mb=320))
    with client:
        trainer.fit(train, val)

    assert trainer.stop_reason == "completed" and trainer.step == 1
    # Which policy is which case: its response file holds the answer with the marker.
    lineage = load_checkpoint(tmp_path / "checkpoints").population_state["lineage"]
    case_of = {pid: MARKER.search((tmp_path / rec["response_file"]).read_text()).group(1)
               for pid, rec in lineage.items()}
    assert sorted(case_of.values()) == sorted(cases)

    failures = [json.loads(line) for line in (tmp_path / "failures.jsonl").read_text().splitlines()]
    step1 = {case_of[f["policy_id"]]: f for f in failures if f["step"] == 1}
    for case, (kind, error_type, needle) in EXPECTED.items():
        assert case in step1, f"{case}: no failure recorded"
        got = step1[case]
        assert (got["kind"], got["error_type"]) == (kind, error_type), f"{case}: {got}"
        assert got["count"] == N_TRAIN and needle in got["reason"], f"{case}: {got}"
    assert WINNER not in step1
    assert (tmp_path / "failures.jsonl").stat().st_size < 20_000  # the gigantic print stayed out

    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    row = rows[-1]
    for status, column in (("exception", "n_exceptions"), ("timeout", "n_timeouts"), ("crash", "n_crashes")):
        assert row[column] == N_TRAIN * sum(kind == status for kind, _, _ in EXPECTED.values()), column
    assert row["n_calls"] == N_TRAIN * len(cases)

    best = trainer.best_policy()
    assert case_of[best.id] == WINNER and row["best_id"] == best.id and row["best_priority"] == 1.0
    assert trainer.val_scores[best.id] == 1.0 and row["val_best_id_score"] == 1.0
    assert (train, val) == pristine  # the mutating policy changed only its own copy
    # Checkpoint files written before the hostile step are untouched.
    step0 = tmp_path / "checkpoints" / "step_000000"
    assert frozen.files and {
        str(p.relative_to(step0)): p.read_bytes() for p in sorted(step0.rglob("*")) if p.is_file()
    } == frozen.files
