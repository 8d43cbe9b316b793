"""The LangProp loop end to end on the Sudoku example: real sandbox workers, real Jinja2 prompts, real
checkpoints, and the replay LLM backend serving the HAND-WRITTEN fixture answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from langprop.checkpoint import load_best_policy, load_checkpoint
from langprop.examples import get_example
from langprop.examples.sudoku.generator import check_solution
from langprop.llm import LLMClient, LLMConfig
from langprop.trainer.config import SandboxConfig, TrainerConfig
from langprop.trainer.loop import Trainer

EXAMPLE = get_example("sudoku")
OPTIONS = EXAMPLE.options({})
TRAIN, VAL = EXAMPLE.make_datasets(OPTIONS)
SANDBOX = SandboxConfig(n_workers=2, call_timeout_s=10.0)  # generous: CI cores are shared


def make_trainer(run_dir: Path, llm=None, llm_overrides=None, **overrides) -> tuple[Trainer, LLMClient]:
    settings = {**EXAMPLE.defaults["trainer"], "run_dir": str(run_dir), "progress": False, **overrides}
    client = LLMClient(
        LLMConfig(backend="replay", replay_path=str(EXAMPLE.recorded_dir), **(llm_overrides or {})),
        log_dir=run_dir / "llm",
    )
    model = EXAMPLE.build_model(OPTIONS, settings.get("exception_score", -1.0))
    return Trainer(model, llm or client, TrainerConfig(**settings), sandbox=SANDBOX), client


def train(run_dir: Path, **overrides) -> Trainer:
    trainer, client = make_trainer(run_dir, **overrides)
    with client:
        trainer.fit(TRAIN, VAL)
    return trainer


def _strip_transcript_refs(value):
    if isinstance(value, dict):
        return {k: _strip_transcript_refs(v) for k, v in value.items()
                if k not in ("prompt_file", "response_file", "next_seq")}
    if isinstance(value, list):
        return [_strip_transcript_refs(v) for v in value]
    return value


def run_fingerprint(run_dir: Path, transcript: bool = True) -> dict:
    """Everything that must match between two runs (minus wall-clock and path fields).

    ``transcript=False`` ignores the numbering of the LLM transcript files: a request refused by the
    budget still leaves its prompt file, so a resumed run numbers its files after it.
    """
    if not transcript:
        fp = run_fingerprint(run_dir)
        fp.pop("prompts")
        fp["failures.jsonl"] = [_strip_transcript_refs(json.loads(x)) for x in fp["failures.jsonl"].splitlines()]
        return _strip_transcript_refs(fp)
    ckpt = run_dir / "checkpoints"
    step_dir = ckpt / (ckpt / "latest").read_text().strip()
    index = json.loads((step_dir / "index.json").read_text())
    index.pop("saved_at")
    index.pop("config")
    return {
        "step_dir": step_dir.name,
        "index": index,
        "policies": {p.name: p.read_text() for p in sorted((step_dir / "policies").iterdir())},
        "metrics.jsonl": (run_dir / "metrics.jsonl").read_text(),
        "metrics.csv": (run_dir / "metrics.csv").read_text(),
        "failures.jsonl": (run_dir / "failures.jsonl").read_text(),
        "prompts": {p.name: p.read_text() for p in sorted((run_dir / "llm" / "prompts").iterdir())},
    }


@pytest.fixture(scope="module")
def full_run(tmp_path_factory) -> tuple[Path, Trainer]:
    run_dir = tmp_path_factory.mktemp("sudoku_full")
    return run_dir, train(run_dir)


def test_loop_turns_wrong_setup_policies_into_a_correct_solver(full_run):
    run_dir, trainer = full_run
    assert trainer.stop_reason == "completed" and trainer.step == 3
    data = load_checkpoint(run_dir / "checkpoints")
    setup = [rec for rec in data.population_state["lineage"].values() if rec["generation"] == 0]
    assert len(setup) == 3  # four setup answers, one without code
    best = data.best
    assert best.generation >= 1 and best.parent_id in {rec["id"] for rec in setup}
    assert best.model == "hand-written" and best.prompt_file and not Path(best.prompt_file).is_absolute()
    assert (run_dir / best.response_file).is_file()
    # Validation is on puzzles the loop never saw; step 0 shows the setup policies failing them.
    assert trainer.val_scores[best.id] == 1.0
    state = json.loads((run_dir / "run_state.json").read_text())
    assert state["best_id"] == best.id and state["best_val_score"] == 1.0
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2, 3]
    assert rows[0]["val_max_score"] < 1.0  # the zero-shot population: no correct solver
    assert rows[1]["batch_mean_score"] < 0.5 and rows[1]["children_best_score"] == 1.0
    assert rows[-1]["val_best_id_score"] == 1.0
    assert (run_dir / "metrics.csv").read_text().splitlines()[0].startswith("step,epoch,batch")
    assert (run_dir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_best_policy_from_the_checkpoint_solves_a_new_rectangular_puzzle(full_run):
    run_dir, _ = full_run
    solve = load_best_policy(run_dir / "checkpoints")
    try:
        puzzle = VAL[1].inputs  # a 6x6 grid of 3x2 boxes
        assert (puzzle["width"], puzzle["height"]) == (3, 2)
        assert check_solution(solve(**puzzle), puzzle["sudoku"], 3, 2) is None
    finally:
        solve.close()


def test_failures_are_recorded_with_reasons(full_run):
    run_dir, _ = full_run
    failures = [json.loads(line) for line in (run_dir / "failures.jsonl").read_text().splitlines()]
    kinds = {(f["kind"], f.get("error_type")) for f in failures}
    assert ("no_code", None) in kinds  # the prose-only setup answer
    assert ("exception", "IndexError") in kinds  # the 9x9-only solver on smaller grids
    assert ("exception", "SyntaxError") in kinds  # the broken update answers
    no_code = next(f for f in failures if f["kind"] == "no_code")
    assert "python" in no_code["reason"] and (run_dir / no_code["response_file"]).is_file()


def test_update_prompt_shows_several_failures_with_tracebacks(full_run):
    run_dir, _ = full_run
    prompts = sorted((run_dir / "llm" / "prompts").glob("*update*"))
    assert len(prompts) == 2  # step 1 updates two parents; later steps have no failures to fix
    texts = [p.read_text() for p in prompts]
    # n_failure_examples=3 by default: three failing inputs, each with output or error, and the score.
    assert all(t.count("### Failing example") == 3 for t in texts)
    assert any("IndexError" in t or "Traceback" in t for t in texts) or any("Your output:" in t for t in texts)
    assert all("Mean score on the last batch" in t and "width=" in t for t in texts)


def test_n_failure_examples_is_configurable(tmp_path):
    train(tmp_path, n_failure_examples=1, max_steps=1)
    texts = [p.read_text() for p in sorted((tmp_path / "llm" / "prompts").glob("*update*"))]
    assert texts and all(t.count("### Failing example") == 1 for t in texts)


def test_resume_after_step_k_matches_an_uninterrupted_run(full_run, tmp_path):
    run_dir, _ = full_run
    first = train(tmp_path, max_steps=1)
    assert first.step == 1 and "max_steps" in first.stop_reason
    resumed = train(tmp_path)
    assert resumed.step == 3 and resumed.stop_reason == "completed"
    assert run_fingerprint(tmp_path) == run_fingerprint(run_dir)


class _InterruptingLLM:
    """Delegates to a real client but raises KeyboardInterrupt on the given complete() call."""

    def __init__(self, client: LLMClient, at_call: int) -> None:
        self.client, self.at_call, self.calls = client, at_call, 0

    def complete(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.at_call:
            raise KeyboardInterrupt
        return self.client.complete(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.client, name)


def test_ctrl_c_checkpoints_the_last_step_and_resumes_identically(full_run, tmp_path):
    run_dir, _ = full_run
    trainer, client = make_trainer(tmp_path)
    trainer.llm = _InterruptingLLM(client, at_call=2)  # during step 1's update
    with client:
        trainer.fit(TRAIN, VAL)
    assert trainer.stop_reason == "interrupted" and trainer.step == 0
    assert load_checkpoint(tmp_path / "checkpoints").step == 0
    train(tmp_path)
    assert run_fingerprint(tmp_path) == run_fingerprint(run_dir)


def test_budget_exhausted_stops_cleanly_with_a_checkpoint(tmp_path):
    trainer = train(tmp_path, llm_overrides={"budget_tokens": 2500})
    assert "budget" in trainer.stop_reason
    data = load_checkpoint(tmp_path / "checkpoints")
    assert data.step == trainer.step < 3
    assert data.extra["llm_state"]["usage"]["counts"]["calls"] >= 1
    assert json.loads((tmp_path / "run_state.json").read_text())["stop_reason"].startswith("LLM budget")


def test_budget_spent_before_setup_checkpoints_and_a_resume_starts_from_setup(full_run, tmp_path):
    run_dir, _ = full_run
    stopped = train(tmp_path, llm_overrides={"budget_tokens": 50})
    assert "budget" in stopped.stop_reason and stopped.step == 0
    data = load_checkpoint(tmp_path / "checkpoints")
    assert data.step == 0 and data.policies == [] and data.extra["before_setup"] is True
    resumed = train(tmp_path)  # no budget this time
    assert resumed.stop_reason == "completed"
    assert run_fingerprint(tmp_path, transcript=False) == run_fingerprint(run_dir, transcript=False)
