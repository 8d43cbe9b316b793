"""CartPole episodes: run in the sandbox worker (``run_episode``) and re-verified in the trusted parent
(``replay_actions``) by stepping a fresh environment with the same seed through the returned actions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ENV_ID = "CartPole-v1"
MAX_STEPS = 500
# Imported once by each sandbox worker before it forks policy processes (not once per process, ~0.3 s).
SANDBOX_PRELOAD = ("gymnasium", "gymnasium.envs.classic_control.cartpole")


def _as_action(value: Any) -> int:
    """Accept 0/1 as int, bool or numpy integer; anything else is the policy's error."""
    if isinstance(value, bool) or (hasattr(value, "dtype") and getattr(value, "shape", None) == ()):
        value = int(value)
    if not isinstance(value, int) or value not in (0, 1):
        raise ValueError(f"solve_cartpole must return 0 (push left) or 1 (push right), got {value!r}")
    return value


def run_episode(policy_fn: Callable[..., Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """Sandbox harness: one episode with ``policy_fn(x, x_dot, theta, theta_dot)`` choosing actions."""
    import gymnasium as gym  # imported in the worker only

    env = gym.make(ENV_ID, max_episode_steps=int(inputs.get("max_steps", MAX_STEPS)))
    obs, _ = env.reset(seed=int(inputs["seed"]))
    actions: list[int] = []
    total = 0.0
    try:
        while True:
            action = _as_action(policy_fn(*(float(v) for v in obs)))
            actions.append(action)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
    finally:
        env.close()
    return {"actions": actions, "episode_return": total}


@dataclass
class Replay:
    """What the trusted parent saw when replaying an action sequence."""

    episode_return: float
    steps: int
    terminated: bool
    final_state: list[float]
    problem: str | None = None  # set when the sequence is not a faithful episode


def replay_actions(actions: Any, seed: int, max_steps: int = MAX_STEPS) -> Replay:
    """Step a fresh env with ``seed`` through ``actions``; flag sequences no real episode could produce."""
    import gymnasium as gym

    if not isinstance(actions, list | tuple):
        return Replay(0.0, 0, False, [], f"actions must be a list, got {type(actions).__name__}")
    env = gym.make(ENV_ID, max_episode_steps=max_steps)
    obs, _ = env.reset(seed=seed)
    total, steps, done, terminated = 0.0, 0, False, False
    problem = None
    try:
        for a in actions:
            if done:
                problem = f"{len(actions)} actions returned but the episode ended after {steps}"
                break
            if isinstance(a, bool) or a not in (0, 1):
                problem = f"action {steps} is {a!r}, expected 0 or 1"
                break
            obs, reward, terminated, truncated, _ = env.step(int(a))
            total += float(reward)
            steps += 1
            done = terminated or truncated
        if problem is None and not done:
            problem = f"the episode stopped after {steps} actions without ending"
    finally:
        env.close()
    return Replay(total, steps, bool(terminated), [round(float(v), 4) for v in obs], problem)
