"""A task defined in a few lines (generic templates): the update prompt carries what the LLM needs."""

from __future__ import annotations

import math
from dataclasses import dataclass

import yaml

from langprop.evaluation import Sample
from langprop.llm import LLMClient, LLMConfig
from langprop.policy import PolicySpec
from langprop.trainer import LangPropModel, SandboxConfig, Trainer, TrainerConfig

SPEC = PolicySpec("get_factorial", "def get_factorial(number: int) -> int", "Return number! (0! = 1).")

# HAND-WRITTEN replay answers (not from an LLM): a first attempt that prints and fails, then a fix.
ANSWERS = {
    "entries": [
        {"tag": "setup", "model": "hand-written", "answer": (
            "```python\n"
            "def get_factorial(number):\n"
            "    print(f'computing {number}')\n"
            "    if number > 5:\n"
            "        raise ValueError(f'too big: {number}')\n"
            "    return number * 2\n"
            "```\n")},
        {"tag": "update", "model": "hand-written", "answer": "```python\nimport math\n\ndef get_factorial(number):\n    return math.factorial(number)\n```\n"},
    ]
}


@dataclass
class ExactScorer:
    exception_score: float = -1.0
    version: str = "exact-v1"

    def __call__(self, sample, call):
        ok = call.output == sample.expected
        return (1.0 if ok else 0.0), ("correct" if ok else f"expected {sample.expected}, got {call.output}")


def test_update_prompt_shows_inputs_output_expected_traceback_stdout_and_score(tmp_path):
    replay = tmp_path / "answers.yaml"
    replay.write_text(yaml.safe_dump(ANSWERS))
    samples = [Sample(key=f"n{n}", inputs={"number": n}, expected=math.factorial(n)) for n in range(8)]
    config = TrainerConfig(batch_size=8, n_setup_responses=1, n_top_choices=1, n_responses=1,
                           n_failure_examples=4, run_dir=str(tmp_path / "run"), progress=False)
    model = LangPropModel(spec=SPEC, scorer=ExactScorer(), perfect_score=1.0,
                          context={"task": "We compute factorials of small integers."})
    with LLMClient(LLMConfig(backend="replay", replay_path=str(replay)), log_dir=tmp_path / "run" / "llm") as llm:
        trainer = Trainer(model, llm, config, sandbox=SandboxConfig(n_workers=1, call_timeout_s=10.0))
        population = trainer.fit(samples, samples[:3])

    prompt = next((tmp_path / "run" / "llm" / "prompts").glob("*update*")).read_text()
    assert "We compute factorials of small integers." in prompt
    assert prompt.count("### Failing example") == 4
    assert "raised ValueError: too big: 7" in prompt or "raised ValueError: too big: 6" in prompt
    assert "Traceback" in prompt and "computing 7" in prompt  # traceback tail and printed output
    assert "Expected output:\n120" in prompt or "Expected output:\n24" in prompt  # a wrong answer vs label
    assert "Mean score on the last batch: -0.125" in prompt  # (1 right, 5 wrong at 0, 2 raised at -1) / 8
    best = population.policies[0]
    assert "math.factorial" in best.source and population.priority(best.id) == 1.0
    assert trainer.val_scores[best.id] == 1.0
