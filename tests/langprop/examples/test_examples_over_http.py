"""The CartPole example from the command line against an OpenAI-compatible HTTP endpoint.

The endpoint is the llm package's fake server (real HTTP, real ``openai`` SDK) answering with the
HAND-WRITTEN CartPole fixture: weak controllers for the first prompt, a balancing one for updates.
"""

from __future__ import annotations

import json

import yaml

from langprop.examples import get_example
from langprop.llm.testing import fake_openai  # noqa: F401  (fixture)
from langprop.trainer.cli import main

FIXTURE = yaml.safe_load((get_example("cartpole").recorded_dir / "answers.yaml").read_text())["entries"]
SETUP, UPDATE = FIXTURE[0]["answers"], FIXTURE[-1]["answers"][0]


def answer(messages, index, serial):
    is_update = "## Current code" in messages[-1]["content"]
    return UPDATE if is_update else SETUP[index % len(SETUP)]


def test_cartpole_cli_against_an_openai_compatible_server(fake_openai, tmp_path, capsys):  # noqa: F811
    fake_openai.answer = answer
    fake_openai.fail_next(500)  # a transient server error is retried, not fatal
    run_dir = tmp_path / "run"
    code = main(["train", "--example", "cartpole", "--llm.base_url", fake_openai.base_url,
                 "--llm.model", "fake-model", "--llm.backoff_initial_s", "0.05",
                 "--trainer.run_dir", str(run_dir), "--sandbox.n_workers", "2"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "validation score 500" in out
    assert fake_openai.request_count >= 3  # the failed request, setup, at least one update
    state = json.loads((run_dir / "run_state.json").read_text())
    assert state["stop_reason"] == "completed" and state["best_val_score"] == 500.0


def test_a_run_recorded_over_http_replays_to_the_same_result(fake_openai, tmp_path, capsys):  # noqa: F811
    fake_openai.answer = answer
    base = ["train", "--example", "cartpole", "--sandbox.n_workers", "2"]
    assert main([*base, "--llm.base_url", fake_openai.base_url, "--llm.model", "fake-model",
                 "--trainer.run_dir", str(tmp_path / "live")]) == 0
    served = fake_openai.request_count
    # The run's own transcript is a replay file: exact prompts are matched by their sha256.
    assert main([*base, "--llm.backend", "replay", "--llm.replay_path", str(tmp_path / "live" / "llm" / "responses"),
                 "--trainer.run_dir", str(tmp_path / "replayed")]) == 0
    assert fake_openai.request_count == served  # the replay never touched the server

    def scores(run: str) -> list[dict]:
        rows = [json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in row.items() if not k.startswith("llm_")} for row in rows]

    assert scores("replayed") == scores("live")
    capsys.readouterr()
