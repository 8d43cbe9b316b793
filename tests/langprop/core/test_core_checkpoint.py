"""Checkpoint dirs: readable files, exact round trip, crash safety, clear errors; atomic writes."""

import json
import logging
import os

import pytest

from langprop.atomic import atomic_write_json, atomic_write_text
from langprop.checkpoint import (
    CheckpointError,
    list_checkpoints,
    load_best_policy,
    load_checkpoint,
    save_checkpoint,
)
from langprop.policy import Policy, PolicySpec
from langprop.population import Population

SPEC = PolicySpec("double", "def double(x: int) -> int", "Return 2 * x.")


def make_population(offsets=(2, 1, 0)):
    population = Population(tracker_names=("train", "val"), decay=0.5, max_keep=3, seed=7)
    for i, k in enumerate(offsets):
        source = f"def double(x):\n    return 2 * x + {k}\n"
        population.add(Policy(population.new_id(i), source, generation=i, model="gpt-test",
                              parent_id=None if i == 0 else "g000_0000", prompt_file=f"prompts/update_{i}.txt"))
        population.record("train", population.ids[-1], -k)
        population.record("val", population.ids[-1], 0.5)
    population.rerank(step=1)
    return population


def test_round_trip_is_exact_and_files_are_readable(tmp_path):
    population = make_population()
    config = {"trainer": {"epochs": 2, "decay": 0.5}, "llm": {"model": "gpt-test"}}
    extra = {"rng": [1, 2, 3], "llm_usage": {"prompt_tokens": 10}, "cursor": {"epoch": 0, "batch": 4}}
    step_dir = save_checkpoint(tmp_path, 12, population, config, extra, spec=SPEC)
    assert step_dir == tmp_path / "step_000012"
    assert (tmp_path / "latest").read_text().strip() == "step_000012"

    index = json.loads((step_dir / "index.json").read_text())
    best = population.ids[0]
    assert index["step"] == 12 and index["best"] == best and index["function_name"] == "double"
    assert [p["id"] for p in index["policies"]] == population.ids
    assert index["policies"][0]["priorities"] == {"train": 0.0, "val": 0.5}
    text = (step_dir / "policies" / f"{best}.py").read_text()
    assert text.startswith(f"# LangProp policy {best}: generation 2, parent g000_0000") and "priority 0.5 " in text
    compile(text, "policy.py", "exec")  # the header is plain comments

    data = load_checkpoint(tmp_path)
    assert data.step == 12 and data.config == config and data.extra == extra and data.spec == SPEC
    assert [p.source for p in data.policies] == [p.source for p in population.policies]
    assert data.policies == population.policies
    assert data.population().state_dict() == population.state_dict()
    assert load_checkpoint(step_dir).population_state == data.population_state


def test_load_best_policy_in_process(tmp_path):
    save_checkpoint(tmp_path, 1, make_population(), spec=SPEC)
    double = load_best_policy(tmp_path, sandboxed=False)
    assert double(21) == 42
    save_checkpoint(tmp_path / "anon", 1, make_population())
    with pytest.raises(CheckpointError, match="function_name"):
        load_best_policy(tmp_path / "anon", sandboxed=False)
    assert load_best_policy(tmp_path / "anon", sandboxed=False, function_name="double")(1) == 2


def test_load_best_policy_sandboxed(tmp_path):
    from langprop.sandbox import PolicyCallError, SandboxedFunction

    save_checkpoint(tmp_path, 1, make_population(), spec=SPEC)
    double = load_best_policy(tmp_path, sandboxed=True)
    try:
        assert isinstance(double, SandboxedFunction)
        assert double(5) == 10
        result = double.call(x=3)
        assert result.status == "ok" and result.output == 6
        with pytest.raises(PolicyCallError):
            double("a", "b")  # a failure inside the worker comes back as an error, not a crash here
    finally:
        double.close()


@pytest.mark.parametrize(
    "crash_at",
    [
        lambda dst: dst.endswith(".py"),  # while writing the policy files
        lambda dst: dst.endswith("index.json"),  # while writing the index
        lambda dst: os.path.basename(dst) == "step_000002",  # renaming the step dir into place
        lambda dst: os.path.basename(dst) == "latest",  # just before the pointer update
    ],
    ids=["policy-file", "index", "dir-rename", "pointer"],
)
def test_crash_mid_save_leaves_previous_loadable(tmp_path, monkeypatch, crash_at):
    save_checkpoint(tmp_path, 1, make_population(), spec=SPEC)
    real_replace = os.replace

    def crashing_replace(src, dst):
        if crash_at(os.fspath(dst)):
            raise OSError("simulated power cut")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crashing_replace)
    with pytest.raises(OSError, match="power cut"):
        save_checkpoint(tmp_path, 2, make_population((5, 6, 7)), spec=SPEC)
    monkeypatch.undo()
    data = load_checkpoint(tmp_path)
    assert data.step == 1 and "+ 0" in data.best.source
    assert save_checkpoint(tmp_path, 3, make_population(), spec=SPEC).name == "step_000003"
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # no temp leftovers


def test_partial_step_dir_and_stale_temp_dir_are_ignored(tmp_path):
    save_checkpoint(tmp_path, 4, make_population(), spec=SPEC)
    partial = tmp_path / "step_000005"
    (partial / "policies").mkdir(parents=True)
    (partial / "index.json").write_text('{"format": "langprop-checkpoint", "step": 5, "poli')
    (tmp_path / ".step_000005.tmp-dead").mkdir()
    assert load_checkpoint(tmp_path).step == 4
    with pytest.raises(CheckpointError, match="step_000005/index.json: corrupt checkpoint index"):
        load_checkpoint(partial)


def test_clear_errors_for_missing_or_corrupt_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint in"):
        load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nowhere")
    step_dir = save_checkpoint(tmp_path, 1, make_population(), spec=SPEC)
    (step_dir / "index.json").write_text("{ not json")
    with pytest.raises(CheckpointError, match="index.json: corrupt"):
        load_checkpoint(tmp_path)
    (step_dir / "index.json").unlink()
    with pytest.raises(CheckpointError, match="index.json is missing"):
        load_checkpoint(tmp_path)
    (tmp_path / "latest").write_text("../../etc\n")
    with pytest.raises(CheckpointError, match="corrupt pointer"):
        load_checkpoint(tmp_path)
    good = save_checkpoint(tmp_path, 2, make_population(), spec=SPEC)
    (good / "policies" / f"{load_checkpoint(tmp_path).best.id}.py").unlink()
    with pytest.raises(CheckpointError, match=r"\.py: cannot read policy file"):
        load_checkpoint(tmp_path)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "index.json").write_text('{"hello": 1}')
    with pytest.raises(CheckpointError, match="not a LangProp checkpoint"):
        load_checkpoint(tmp_path / "other")
    with pytest.raises(CheckpointError, match="not JSON-serialisable"):
        save_checkpoint(tmp_path, 3, make_population(), extra={"bad": object()})
    assert not (tmp_path / "step_000003").exists()


def test_inconsistent_population_state_is_a_checkpoint_error(tmp_path):
    step_dir = save_checkpoint(tmp_path, 1, make_population(), spec=SPEC)
    index = json.loads((step_dir / "index.json").read_text())
    index["population"]["tracker_names"] = ["train", "test"]
    (step_dir / "index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="index.json: invalid population state"):
        load_checkpoint(tmp_path).population()


def test_resave_same_step_replaces_keep_last_prunes_and_missing_pointer_falls_back(tmp_path, caplog):
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, make_population(), spec=SPEC, keep_last=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_000002", "step_000003"]
    save_checkpoint(tmp_path, 3, make_population((9, 8, 7)), spec=SPEC)
    assert "+ 7" in load_checkpoint(tmp_path).best.source
    (tmp_path / "latest").unlink()
    with caplog.at_level(logging.WARNING, logger="langprop.checkpoint"):
        assert load_checkpoint(tmp_path).step == 3
    assert "no 'latest' pointer" in caplog.text


def test_hand_edited_policy_file_is_used_with_a_warning(tmp_path, caplog):
    step_dir = save_checkpoint(tmp_path, 1, make_population(), spec=SPEC)
    best_file = step_dir / "policies" / f"{load_checkpoint(tmp_path).best.id}.py"
    best_file.write_text(best_file.read_text().replace("return 2 * x + 0", "return x + x"))
    with caplog.at_level(logging.WARNING, logger="langprop.checkpoint"):
        data = load_checkpoint(tmp_path)
    assert "return x + x" in data.best.source and "edited" in caplog.text
    assert load_best_policy(tmp_path, sandboxed=False)(4) == 8


def test_atomic_writes_keep_old_content_on_failure(tmp_path):
    path = atomic_write_json(tmp_path / "sub" / "a.json", {"v": [1.1, float("inf")]})
    assert json.loads(path.read_text()) == {"v": [1.1, float("inf")]}
    with pytest.raises(TypeError):
        atomic_write_json(path, {"v": object()})
    assert json.loads(path.read_text())["v"][0] == 1.1
    atomic_write_text(path, "new")
    assert path.read_text() == "new" and os.listdir(path.parent) == ["a.json"]
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)
