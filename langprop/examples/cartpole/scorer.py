"""CartPole scorer: the episode return, recomputed in the trusted parent from the returned actions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langprop.examples.cartpole.harness import MAX_STEPS, replay_actions


@dataclass
class CartPoleScorer:
    """Never trusts the worker's claimed return: replays the actions with the same seed."""

    exception_score: float = -1.0
    version: str = "cartpole-v1"

    def __call__(self, sample: Any, call: Any) -> tuple[float, str]:
        if call.status != "ok":
            return self.exception_score, call.describe()
        out = call.output
        if not isinstance(out, dict) or "actions" not in out:
            return self.exception_score, "harness output is missing the action sequence"
        max_steps = int(sample.inputs.get("max_steps", MAX_STEPS))
        replay = replay_actions(out["actions"], int(sample.inputs["seed"]), max_steps)
        if replay.problem is not None:
            return self.exception_score, f"episode could not be verified: {replay.problem}"
        claimed = out.get("episode_return")
        if claimed is not None and abs(float(claimed) - replay.episode_return) > 1e-6:
            return self.exception_score, (
                f"claimed return {claimed} differs from the verified return {replay.episode_return}"
            )
        if replay.terminated:
            x, x_dot, theta, theta_dot = replay.final_state
            why = "the cart left the track" if abs(x) > 2.4 else "the pole fell past 12 degrees"
            return replay.episode_return, (
                f"episode ended after {replay.steps} of {max_steps} steps: {why} "
                f"(final x={x}, x_dot={x_dot}, theta={theta}, theta_dot={theta_dot})"
            )
        return replay.episode_return, f"balanced for all {replay.steps} steps"
