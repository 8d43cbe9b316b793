"""``python -m langprop``: the README's offline Sudoku command, eval, and one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from langprop.trainer.cli import main

REPO = Path(__file__).resolve().parents[3]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    return subprocess.run(
        [sys.executable, "-m", "langprop", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=240
    )


def test_train_sudoku_with_recorded_answers_then_eval(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli("train", "--example", "sudoku", "--llm.backend", "replay",
                   "--trainer.run_dir", str(run_dir), "--sandbox.n_workers", "2", "--sandbox.call_timeout_s", "10")
    assert proc.returncode == 0, proc.stderr
    assert "validation score 1" in proc.stdout
    for name in ("metrics.csv", "metrics.jsonl", "curves.png", "failures.jsonl", "checkpoints/latest"):
        assert (run_dir / name).is_file(), name
    proc = run_cli("eval", str(run_dir / "checkpoints"), "--top", "1", "--json", str(tmp_path / "eval.json"))
    assert proc.returncode == 0, proc.stderr
    assert "val score 1 over 12 samples (0 errors)" in proc.stdout
    assert (tmp_path / "eval.json").is_file()


@pytest.mark.parametrize(
    "argv,code,needle",
    [
        (["train", "--example", "sudoku", "--trainer.epoch", "2"], 2, "trainer.epoch"),
        (["train", "--example", "chess"], 2, "unknown example 'chess'"),
        (["train", "--config", "does/not/exist.yaml"], 2, "does/not/exist.yaml"),
        (["train", "--example", "sudoku", "--task.n_trian", "3"], 2, "task.n_trian"),
        (["eval", "no/such/checkpoint"], 2, "no/such/checkpoint"),
    ],
)
def test_user_errors_are_one_line_and_nonzero(argv, code, needle, capsys, tmp_path):
    assert main([*argv, "--trainer.run_dir", str(tmp_path / "r")] if argv[0] == "train" else argv) == code
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and needle in err and "\n" not in err


def test_unreachable_llm_is_one_line_and_keeps_a_clean_run_dir(capsys, tmp_path):
    argv = ["train", "--example", "sudoku", "--trainer.run_dir", str(tmp_path / "r"),
            "--llm.base_url", "http://127.0.0.1:9/v1", "--llm.model", "nothing-here",
            "--llm.max_retries", "0", "--llm.timeout_s", "2", "--sandbox.n_workers", "1"]
    assert main(argv) == 3
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: LLM unavailable") and "127.0.0.1:9" in err and "\n" not in err


@pytest.mark.parametrize("kind", ["file", "under_a_file"])
def test_a_run_dir_that_is_a_file_is_a_one_line_user_error(tmp_path, kind):
    afile = tmp_path / "afile"
    afile.write_text("not a directory")
    run_dir = afile if kind == "file" else afile / "run"
    proc = run_cli("train", "--example", "sudoku", "--llm.backend", "replay", "--trainer.run_dir", str(run_dir))
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert err.startswith("error: trainer.run_dir") and str(run_dir) in err and "\n" not in err
    assert "Traceback" not in proc.stderr and afile.read_text() == "not a directory"


def test_budget_exhausted_exits_5_with_a_checkpoint_and_says_so_in_help(tmp_path, capsys):
    from langprop.checkpoint import load_checkpoint

    run_dir = tmp_path / "r"
    argv = ["train", "--example", "sudoku", "--llm.backend", "replay", "--trainer.run_dir", str(run_dir),
            "--llm.budget_tokens", "2500", "--sandbox.n_workers", "2", "--sandbox.call_timeout_s", "10"]
    assert main(argv) == 5
    captured = capsys.readouterr()
    assert "budget" in captured.err and "resume" in captured.err
    data = load_checkpoint(run_dir / "checkpoints")
    assert data.step < 3 and f"stopped at step {data.step}" in captured.out
    proc = run_cli("train", "--help")
    assert proc.returncode == 0
    assert "exit status:" in proc.stdout and "5    stopped early: the LLM budget is exhausted" in proc.stdout
