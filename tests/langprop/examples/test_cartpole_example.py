"""CartPole example: episodes in a harness, re-verified by replaying the actions in the parent."""

from __future__ import annotations

import pytest

from langprop.examples.cartpole.harness import replay_actions, run_episode
from langprop.examples.cartpole.scorer import CartPoleScorer
from langprop.sandbox.types import CallResult


class _Sample:
    def __init__(self, seed, max_steps=500):
        self.key = f"ep{seed}"
        self.inputs = {"seed": seed, "max_steps": max_steps}
        self.expected = None


def balance(x, x_dot, theta, theta_dot):
    return 1 if theta + 0.5 * theta_dot > 0 else 0


def test_good_controller_reaches_the_maximum_and_replays_exactly():
    out = run_episode(balance, {"seed": 3, "max_steps": 500})
    assert out["episode_return"] == 500.0 and len(out["actions"]) == 500
    score, feedback = CartPoleScorer()(_Sample(3), CallResult("ok", output=out))
    assert score == 500.0 and "all 500 steps" in feedback


def test_always_right_falls_quickly_and_feedback_says_why():
    out = run_episode(lambda *s: 1, {"seed": 0, "max_steps": 500})
    score, feedback = CartPoleScorer()(_Sample(0), CallResult("ok", output=out))
    assert score == out["episode_return"] < 20
    assert "pole fell" in feedback


def test_parent_does_not_trust_the_claimed_return():
    out = run_episode(lambda *s: 1, {"seed": 0, "max_steps": 500})
    scorer = CartPoleScorer(exception_score=-1.0)
    forged = dict(out, episode_return=500.0)
    assert scorer(_Sample(0), CallResult("ok", output=forged))[0] == -1.0
    padded = dict(out, actions=out["actions"] + [1, 1, 1], episode_return=out["episode_return"] + 3)
    score, feedback = scorer(_Sample(0), CallResult("ok", output=padded))
    assert score == -1.0 and "could not be verified" in feedback
    # a different seed gives a different trajectory: the same actions do not verify as the same return
    assert replay_actions(out["actions"], seed=0).episode_return == out["episode_return"]


@pytest.mark.parametrize("bad", [2, "left", None, 0.5])
def test_invalid_actions_raise_in_the_harness(bad):
    with pytest.raises(ValueError, match="must return 0"):
        run_episode(lambda *s: bad, {"seed": 0, "max_steps": 10})


def test_truncated_episode_scores_its_step_limit():
    out = run_episode(balance, {"seed": 1, "max_steps": 50})
    assert CartPoleScorer()(_Sample(1, max_steps=50), CallResult("ok", output=out))[0] == 50.0
