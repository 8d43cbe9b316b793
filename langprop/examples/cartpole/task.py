"""The CartPole example: ``solve_cartpole(x, x_dot, theta, theta_dot) -> 0 | 1`` scored by episode return."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langprop.examples.cartpole.harness import MAX_STEPS
from langprop.examples.cartpole.scorer import CartPoleScorer
from langprop.examples.keys import sample_key
from langprop.policy import PolicySpec
from langprop.trainer.model import LangPropModel

HERE = Path(__file__).resolve().parent
RECORDED_DIR = HERE / "recorded"
HARNESS = "langprop.examples.cartpole.harness:run_episode"

SPEC = PolicySpec(
    name="solve_cartpole",
    signature="def solve_cartpole(x: float, x_dot: float, theta: float, theta_dot: float) -> int",
    docstring=(
        "Balance a pole on a cart (gymnasium CartPole-v1). Called once per time step (50 Hz) with the\n"
        "cart position x (m, track limit +-2.4), cart velocity x_dot (m/s), pole angle theta (rad,\n"
        "positive = leaning right, the episode ends beyond +-0.2095 rad = 12 degrees) and pole angular\n"
        "velocity theta_dot (rad/s). Return 0 to push the cart left or 1 to push it right."
    ),
)


@dataclass
class CartPoleOptions:
    """Episodes for the example (``--task.<name>`` on the command line)."""

    n_train: int = 6  # training episodes (environment seeds)
    n_val: int = 4
    max_steps: int = MAX_STEPS
    seed: int = 0


class CartPoleModel(LangPropModel):
    def show_inputs(self, inputs: dict[str, Any]) -> Any:
        return f"one episode of CartPole-v1 reset with seed {inputs['seed']} (at most {inputs['max_steps']} steps)"

    def show_output(self, output: Any) -> Any:
        if isinstance(output, dict) and isinstance(output.get("actions"), list):
            actions = output["actions"]
            pushes = sum(1 for a in actions if a == 1)
            return (
                f"{len(actions)} actions ({pushes} right, {len(actions) - pushes} left); "
                f"first ones: {actions[:20]}"
            )
        return output


def build_model(options: CartPoleOptions, exception_score: float = -1.0) -> LangPropModel:
    return CartPoleModel(
        spec=SPEC,
        scorer=CartPoleScorer(exception_score=exception_score),
        template_dirs=[HERE / "templates"],
        harness=HARNESS,
        perfect_score=float(options.max_steps),
    )


def make_datasets(options: CartPoleOptions) -> tuple[list[Any], list[Any]]:
    """One sample per episode: its inputs are the env seed and the step limit (run by the harness)."""
    from langprop.evaluation import Sample

    def samples(split: str, seeds: range) -> list[Any]:
        out = []
        for s in seeds:
            inputs = {"seed": s, "max_steps": options.max_steps}
            # Digest of the inputs: any option that changes an episode changes its key (evaluation cache).
            out.append(Sample(key=sample_key(f"cartpole/{split}/{s}/{options.max_steps}", inputs), inputs=inputs))
        return out

    base = options.seed * 10_000
    train = samples("train", range(base, base + options.n_train))
    val = samples("val", range(base + 5_000, base + 5_000 + options.n_val))
    return train, val


# Run preset: 3 steps of 2 episodes, as in the reference (2 episodes per batch).
DEFAULTS: dict[str, Any] = {
    "trainer": {"epochs": 1, "batch_size": 2, "n_responses": 2, "n_top_choices": 2, "max_keep": 3, "decay": 0.5,
                "run_dir": "runs/cartpole"},
    "llm": {"replay_path": str(RECORDED_DIR)},
    "sandbox": {"call_timeout_s": 10.0},
}
