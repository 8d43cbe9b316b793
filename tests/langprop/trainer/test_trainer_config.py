"""Run configuration: dataclass defaults ← example preset ← YAML ← dotted overrides, with clear errors."""

from __future__ import annotations

import pytest

from langprop.trainer.config import ConfigError, TrainerConfig, load_run_config, normalize_overrides


def test_yaml_and_dotted_overrides_merge_in_order(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("trainer:\n  epochs: 3\n  batch_size: 5\nllm:\n  model: m1\ntask:\n  n_train: 7\n")
    cfg = load_run_config(
        path,
        ["--trainer.batch_size", "6", "--llm.model=m2", "sandbox.call_timeout_s=0.5"],
        defaults={"trainer": {"epochs": 2, "n_responses": 3}},
    )
    assert (cfg.trainer.epochs, cfg.trainer.batch_size, cfg.trainer.n_responses) == (3, 6, 3)
    assert cfg.llm.model == "m2" and cfg.sandbox.call_timeout_s == 0.5
    assert cfg.task == {"n_train": 7}
    assert isinstance(cfg.trainer, TrainerConfig)


@pytest.mark.parametrize(
    "overrides,needle",
    [
        (["--trainer.epoch", "2"], "trainer.epoch"),
        (["--trainer.epochs", "two"], "trainer.epochs"),
        (["--trainer.batch_size", "0"], "trainer.batch_size"),
        (["--llm.backend", "carrier-pigeon"], "llm.backend"),
        (["--trainer.epochs"], "needs a value"),
        (["--sandbox.call_timeout_s", "0"], "sandbox.call_timeout_s"),
        (["epochs"], "cannot read"),
    ],
)
def test_bad_values_name_the_field(overrides, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        load_run_config(None, overrides)


def test_missing_and_broken_yaml_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_run_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_run_config(bad)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("trainer:\n  n_failure_example: 2\n")
    with pytest.raises(ConfigError, match=r"wrong.yaml.*trainer\.n_failure_example"):
        load_run_config(wrong)


def test_normalize_overrides_accepts_three_spellings():
    assert normalize_overrides(["--a.b", "1", "--c=2", "d.e=3"]) == ["a.b=1", "c=2", "d.e=3"]


def test_shipped_local_model_config_loads_for_both_examples():
    from pathlib import Path

    from langprop.examples import get_example

    path = Path(__file__).resolve().parents[3] / "langprop/examples/configs/local_base_model.yaml"
    for name in ("sudoku", "cartpole"):
        example = get_example(name)
        cfg = load_run_config(path, ["--llm.base_url", "http://127.0.0.1:9999/v1"], defaults=example.defaults)
        assert cfg.llm.stop == ["\n```"] and cfg.llm.prefix_messages[1]["role"] == "assistant"
        assert cfg.llm.base_url == "http://127.0.0.1:9999/v1" and cfg.trainer.n_responses == 1
        example.options(cfg.task)
