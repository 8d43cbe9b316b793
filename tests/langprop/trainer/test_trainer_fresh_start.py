"""``fit(resume=False)`` (``--no-resume``) starts afresh: old checkpoints are moved aside, the evaluation
cache is new, and TensorBoard does not show the old run's points at the same steps."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from langprop.checkpoint import load_checkpoint
from langprop.examples import get_example
from langprop.llm import LLMClient, LLMConfig
from langprop.trainer.config import SandboxConfig, TrainerConfig
from langprop.trainer.loop import Trainer

EXAMPLE = get_example("sudoku")
OPTIONS = EXAMPLE.options({})
TRAIN, VAL = EXAMPLE.make_datasets(OPTIONS)


def train(run_dir: Path, resume: bool = True, **overrides) -> Trainer:
    settings = {**EXAMPLE.defaults["trainer"], "run_dir": str(run_dir), "progress": False, **overrides}
    client = LLMClient(LLMConfig(backend="replay", replay_path=str(EXAMPLE.recorded_dir)), log_dir=run_dir / "llm")
    trainer = Trainer(EXAMPLE.build_model(OPTIONS), client, TrainerConfig(**settings),
                      sandbox=SandboxConfig(n_workers=2, call_timeout_s=10.0))
    with client:
        trainer.fit(TRAIN, VAL, resume=resume)
    return trainer


def _next_second() -> None:
    """TensorBoard orders event files by the whole-second time in their names."""
    time.sleep(1.05 - time.time() % 1.0)


def test_no_resume_moves_checkpoints_aside_and_starts_a_fresh_eval_cache(tmp_path):
    first = train(tmp_path, max_steps=1)
    old_index = (tmp_path / "checkpoints" / "step_000001" / "index.json").read_bytes()
    second = train(tmp_path, resume=False, max_steps=1)
    # Same policies on the same samples: with the old cache, every call of the first run would be a
    # cache hit; with a fresh one the second run does exactly the work of the first.
    assert second.eval_stats["calls"] == first.eval_stats["calls"] > 0
    assert second.eval_stats["cache_hits"] == first.eval_stats["cache_hits"]
    assert second.step == 1 and second.stop_reason.startswith("max_steps")
    moved = sorted(tmp_path.glob("checkpoints.old-*"))
    assert len(moved) == 1 and (moved[0] / "step_000001" / "index.json").read_bytes() == old_index
    # The new checkpoints hold only this run's steps.
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("step_*")) == ["step_000000", "step_000001"]
    assert load_checkpoint(tmp_path / "checkpoints").step == 1
    # A resume (the default) of the same run dir does use the cache.
    third = train(tmp_path, max_steps=2)
    assert third.step == 2


def _scalars(log_dir: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir))
    events.Reload()
    return [(e.step, round(e.value, 6)) for e in events.Scalars(tag)]


def test_tensorboard_has_one_point_per_step_after_a_resume_and_a_restart(tmp_path):
    pytest.importorskip("tensorboard")
    from langprop.trainer.metrics import MetricsLogger

    logger = MetricsLogger(tmp_path, purge_step=0)
    for step in range(4):
        logger.log({"step": step, "best_priority": 0.1 * step})
    logger.close()
    _next_second()
    resumed = MetricsLogger(tmp_path, purge_step=2)  # resumed from the checkpoint of step 1
    for step in (2, 3):
        resumed.log({"step": step, "best_priority": 1.0 + step})
    resumed.close()
    assert _scalars(tmp_path / "tensorboard", "best_priority") == [(0, 0.0), (1, 0.1), (2, 3.0), (3, 4.0)]
    _next_second()
    restarted = MetricsLogger(tmp_path, purge_step=0)  # --no-resume
    restarted.log({"step": 0, "best_priority": 7.0})
    restarted.close()
    assert _scalars(tmp_path / "tensorboard", "best_priority") == [(0, 7.0)]


def test_trainer_resume_writes_no_duplicate_tensorboard_steps(tmp_path):
    pytest.importorskip("tensorboard")
    train(tmp_path, max_steps=1)
    _next_second()
    train(tmp_path)
    _next_second()
    train(tmp_path, resume=False, max_steps=1)
    steps = [s for s, _ in _scalars(tmp_path / "tensorboard", "n_answers")]
    assert steps == [0, 1]  # the restarted run's steps only, each once
