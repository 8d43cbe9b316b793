"""CartPole through the whole loop: episodes in sandbox workers via the harness, verified in the parent."""

from __future__ import annotations

import json

from langprop.checkpoint import load_checkpoint
from langprop.examples import get_example
from langprop.llm import LLMClient, LLMConfig
from langprop.trainer.config import SandboxConfig, TrainerConfig
from langprop.trainer.loop import Trainer


def test_cartpole_loop_goes_from_falling_to_balancing_500_steps(tmp_path):
    example = get_example("cartpole")
    options = example.options({})
    train, val = example.make_datasets(options)
    settings = {**example.defaults["trainer"], "run_dir": str(tmp_path), "progress": False}
    client = LLMClient(LLMConfig(backend="replay", replay_path=str(example.recorded_dir)), log_dir=tmp_path / "llm")
    trainer = Trainer(example.build_model(options), client, TrainerConfig(**settings),
                      sandbox=SandboxConfig(n_workers=2, call_timeout_s=10.0))
    with client:
        trainer.fit(train, val)

    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["step"] == 0 and rows[0]["val_max_score"] < 100  # zero-shot: always-push and angle-only
    assert rows[-1]["val_best_id_score"] == 500.0
    best = load_checkpoint(tmp_path / "checkpoints").best
    assert best.generation >= 1 and "theta_dot" in best.source
    # The update prompt summarised the episodes instead of dumping 500 actions.
    prompt = next((tmp_path / "llm" / "prompts").glob("*update*")).read_text()
    assert "one episode of CartPole-v1 reset with seed" in prompt and "actions (" in prompt
