"""Evaluator: trusted scoring, failure feedback, and the (source hash, sample key, scorer version) cache."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langprop.evaluation import Evaluator, Sample, infer_function_name
from langprop.policy import Policy
from langprop.sandbox import CallResult, SandboxLimits, SandboxPool

DOUBLE = "def double(x):\n    return 2 * x\n"
WRONG = "def double(x):\n    return x + 1\n"
RAISES = "def double(x):\n    return {}[x]\n"
TEXT = "def double(x):\n    return 'two'\n"


@dataclass
class ExactScorer:
    version: str = "exact-1"
    exception_score: float = -1.0
    seen: list[str] = field(default_factory=list)

    def __call__(self, sample: Sample, call: CallResult) -> tuple[float, str]:
        self.seen.append(sample.key)
        if call.output == sample.expected:
            return 1.0, "correct"
        return 0.0 - abs(call.output - sample.expected) / 100, f"expected {sample.expected}, got {call.output}"


SAMPLES = [Sample(key=f"n{i}", inputs={"x": i}, expected=2 * i) for i in range(5)]


def test_scores_feedback_and_failures(pool: SandboxPool) -> None:
    scorer = ExactScorer()
    ev = Evaluator(scorer, pool, function_name="double")
    policies = [Policy("good", DOUBLE), Policy("wrong", WRONG), Policy("raises", RAISES), Policy("text", TEXT)]
    out = ev.evaluate(policies, SAMPLES)
    assert [e.score for e in out["good"]] == [1.0] * 5
    assert [e.sample_key for e in out["good"]] == [s.key for s in SAMPLES]
    assert out["wrong"][3].feedback == "expected 6, got 4" and out["wrong"][1].score == 1.0
    bad = out["raises"][2]
    assert bad.score == -1.0 and bad.call.status == "exception"
    assert bad.feedback.startswith("the policy raised an exception: KeyError: 2") and "<policy>" in bad.feedback
    # A wrong type breaks this (lazy) scorer: the policy gets the penalty and the reason, not a crash.
    assert out["text"][0].score == -1.0 and "could not be scored: TypeError" in out["text"][0].feedback
    assert ev.stats["calls"] == 20 and ev.stats["exception"] == 5 and ev.stats["ok"] == 15


def test_timeouts_and_crashes_get_the_exception_score_with_the_reason() -> None:
    loops = "def double(x):\n    while x == 1:\n        pass\n    import os\n    if x == 2:\n        os._exit(1)\n    return 2 * x\n"
    with SandboxPool(n_workers=1, limits=SandboxLimits(call_timeout_s=0.3)) as pool:
        out = Evaluator(ExactScorer(), pool, function_name="double").evaluate([Policy("p", loops)], SAMPLES[:4])
    assert [e.call.status for e in out["p"]] == ["ok", "timeout", "crash", "ok"]
    assert [e.score for e in out["p"]] == [1.0, -1.0, -1.0, 1.0]
    assert out["p"][1].feedback.startswith("the call timed out") and "0.3s" in out["p"][1].feedback
    assert out["p"][2].feedback.startswith("the policy process crashed")


def test_cache_skips_work_and_survives_a_restart(pool: SandboxPool, tmp_path: Path) -> None:
    db = tmp_path / "eval_cache.sqlite"
    scorer = ExactScorer()
    ev = Evaluator(scorer, pool, cache_path=db, function_name="double")
    first = ev.evaluate([Policy("a", DOUBLE), Policy("b", RAISES)], SAMPLES)
    assert ev.stats["calls"] == 10
    # Same sources under new ids (e.g. a duplicate answer) and an extra sample: only the new sample runs.
    more = [*SAMPLES, Sample("n9", {"x": 9}, 18)]
    second = ev.evaluate([Policy("a2", DOUBLE), Policy("b2", RAISES)], more)
    assert ev.stats["calls"] == 12 and ev.stats["cache_hits"] == 10
    assert [e.score for e in second["a2"]] == [1.0] * 6
    assert second["b2"][0].feedback == first["b"][0].feedback
    ev.close()

    # A resumed run: a fresh evaluator on the same file runs nothing and returns identical evaluations.
    resumed = Evaluator(ExactScorer(), pool, cache_path=db, function_name="double")
    again = resumed.evaluate([Policy("a3", DOUBLE), Policy("b3", RAISES)], more)
    assert resumed.stats["calls"] == 0 and resumed.stats["cache_hits"] == 12
    assert [(e.score, e.feedback, e.call.status) for e in again["b3"]] == [
        (e.score, e.feedback, e.call.status) for e in second["b2"]
    ]
    assert again["b3"][0].call.traceback == second["b2"][0].call.traceback
    # A new scorer version invalidates the cached scores.
    bumped = Evaluator(ExactScorer(version="exact-2"), pool, cache_path=db, function_name="double")
    bumped.evaluate([Policy("a4", DOUBLE)], SAMPLES)
    assert bumped.stats["calls"] == 5


def test_duplicate_sources_run_once(pool: SandboxPool) -> None:
    scorer = ExactScorer()
    ev = Evaluator(scorer, pool, function_name="double")
    out = ev.evaluate([Policy("x", DOUBLE), Policy("y", DOUBLE)], SAMPLES[:3])
    assert ev.stats["calls"] == 3 and set(out) == {"x", "y"}
    assert [e.score for e in out["y"]] == [1.0] * 3


def test_array_outputs_are_cached_as_plain_data(pool: SandboxPool, tmp_path: Path) -> None:
    source = "import numpy as np\ndef f(n):\n    return np.arange(n)\n"

    class LenScorer:
        version, exception_score = "len", -1.0

        def __call__(self, sample: Sample, call: CallResult) -> tuple[float, Any]:
            return float(len(call.output)), "ok"

    db = tmp_path / "c.sqlite"
    Evaluator(LenScorer(), pool, cache_path=db).evaluate([Policy("p", source)], [Sample("s", {"n": 4})])
    cached = Evaluator(LenScorer(), pool, cache_path=db).evaluate([Policy("p", source)], [Sample("s", {"n": 4})])
    assert cached["p"][0].cached and cached["p"][0].call.output.tolist() == [0, 1, 2, 3]


def test_function_name_inference() -> None:
    assert infer_function_name("def helper():\n    pass\ndef main(x):\n    return helper()\n") == "main"
    assert infer_function_name("def broken(:\n") == "<unparsable>"
