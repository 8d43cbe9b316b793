"""``TrainerConfig.val_tracker``: validation scores also go into a "val" priority tracker, so the
ranking is by train + val priority. A constructed case where the two disagree shows the difference."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from langprop.evaluation import Sample
from langprop.llm import LLMClient, LLMConfig
from langprop.policy import PolicySpec
from langprop.trainer.config import ConfigError, SandboxConfig, TrainerConfig
from langprop.trainer.loop import Trainer
from langprop.trainer.model import LangPropModel

# HAND-WRITTEN replay answers (written by a person, not by an LLM). "memorise" is perfect on the
# training batch and wrong on validation; "generalise" is half right on the batch and perfect on
# validation. Update prompts get an answer without code.
ANSWERS = '''
# HAND-WRITTEN fixture answers -- NOT produced by any LLM.
default: "No code this time."
entries:
  - tag: setup
    model: hand-written
    answers:
      - |
        ```python
        # memorise
        def pick(x):
            return x
        ```
      - |
        ```python
        # generalise
        def pick(x):
            if x > 10:
                return 0
            return 1 if x == 1 else -5
        ```
'''

SPEC = PolicySpec(name="pick", signature="def pick(x: int) -> int", docstring="Return the right number for x.")
TRAIN = [Sample(key=f"train/{x}", inputs={"x": x}, expected=x) for x in (1, 2)]
VAL = [Sample(key=f"val/{x}", inputs={"x": x}, expected=0) for x in (20, 21)]


@dataclass
class ExactScorer:
    exception_score: float = -1.0
    version: str = "exact-v1"

    def __call__(self, sample, call):
        return (1.0, "right") if call.output == sample.expected else (0.0, f"expected {sample.expected}")


def fit(tmp_path, val_tracker: bool, resume: bool = True) -> Trainer:
    (tmp_path / "answers.yaml").write_text(ANSWERS)
    config = TrainerConfig(epochs=1, batch_size=2, n_setup_responses=2, n_responses=1, n_top_choices=1, max_keep=4,
                           run_dir=str(tmp_path / "run"), progress=False, val_tracker=val_tracker, tensorboard=False)
    client = LLMClient(LLMConfig(backend="replay", replay_path=str(tmp_path / "answers.yaml")),
                       log_dir=tmp_path / "run" / "llm")
    model = LangPropModel(spec=SPEC, scorer=ExactScorer(), perfect_score=1.0)
    trainer = Trainer(model, client, config, sandbox=SandboxConfig(n_workers=1, call_timeout_s=5.0))
    with client:
        trainer.fit(TRAIN, VAL, resume=resume)
    return trainer


def _name(trainer: Trainer) -> str:
    return trainer.best_policy().source.splitlines()[0].lstrip("# ").strip()


def test_default_ranks_by_train_scores_only(tmp_path):
    trainer = fit(tmp_path, val_tracker=False)
    assert trainer.population.tracker_names == ("train",)
    assert _name(trainer) == "memorise"
    row = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert row["best_priority"] == 1.0 and row["n_prompts"] == 0  # perfect on the batch: nothing to fix


def test_val_tracker_ranks_by_train_plus_val(tmp_path):
    trainer = fit(tmp_path, val_tracker=True)
    assert trainer.population.tracker_names == ("train", "val")
    best = trainer.best_policy()
    assert _name(trainer) == "generalise"
    assert trainer.population.priority(best.id) == pytest.approx(0.5 + 1.0)
    row = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert row["best_id"] == best.id and row["best_priority"] == 1.5
    # Step 1 already ranked "generalise" first (step-0 validation + batch), so it got the update prompt.
    assert row["n_prompts"] == 1 and row["n_no_code"] == 1
    # Resuming with the other setting would silently mix rankings: it is refused, naming the field.
    with pytest.raises(ConfigError, match="trainer.val_tracker"):
        fit(tmp_path, val_tracker=False)
