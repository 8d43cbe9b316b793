"""The Sudoku loop against a real local model (Gemma-3 270M over the OpenAI protocol on 127.0.0.1).

That base model writes no usable solver, which is the point: whatever it returns (no code block,
prose, repeated text, truncated code) the loop must score it, record why it failed, and checkpoint.
"""

from __future__ import annotations

import json

import pytest

from langprop.checkpoint import load_checkpoint
from langprop.examples import get_example
from langprop.llm import LLMClient
from langprop.llm.testing import local_llm  # noqa: F401  (fixture)
from langprop.trainer.config import SandboxConfig, TrainerConfig
from langprop.trainer.loop import Trainer


@pytest.mark.slow
@pytest.mark.timeout(1200)  # a CPU-only model on 2 shared cores: minutes under load, not the default 300 s
def test_sudoku_loop_survives_a_real_small_model(local_llm, tmp_path):  # noqa: F811
    example = get_example("sudoku")
    # Small prompts: 4x4 puzzles only, one failing example per update prompt, short answers.
    options = example.options({"n_train": 4, "n_val": 2, "sizes": [[2, 2]]})
    train, val = example.make_datasets(options)
    # Kept small for 2 shared CPU cores: 3 setup answers, then at most 2 update answers per step.
    config = TrainerConfig(epochs=1, batch_size=2, n_setup_responses=3, n_responses=1, n_top_choices=2,
                           max_keep=4, n_failure_examples=1, run_dir=str(tmp_path), progress=False, seed=0)
    client = LLMClient(local_llm.llm_config(max_tokens=160, seed=0), log_dir=tmp_path / "llm")
    trainer = Trainer(example.build_model(options), client, config,
                      sandbox=SandboxConfig(n_workers=2, call_timeout_s=2.0))
    with client:
        trainer.fit(train, val)

    assert trainer.stop_reason == "completed" and trainer.step == 2
    data = load_checkpoint(tmp_path / "checkpoints")
    assert data.step == 2
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2]
    # Every answer became a policy or a recorded no-code failure; every failure says why.
    failures = [json.loads(line) for line in (tmp_path / "failures.jsonl").read_text().splitlines()]
    lineage = data.population_state["lineage"]
    n_answers = sum(r["n_answers"] for r in rows)  # step 0 holds the setup answers
    assert len(lineage) + sum(f["kind"] == "no_code" for f in failures) == n_answers
    assert failures and all(f["reason"] or f.get("error_type") for f in failures)
    for policy in data.policies:  # surviving policies are readable files with lineage to the model
        assert policy.model and (tmp_path / policy.response_file).is_file()
    assert (tmp_path / "curves.png").is_file()
