"""LLMClient against a real HTTP server speaking the OpenAI protocol: retries, n, concurrency, errors."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from langprop.llm import LLMClient, LLMConfig, LLMConfigError, LLMUnavailable
from langprop.llm.fake_server import FakeOpenAIServer
from langprop.llm.local_server import free_port
from langprop.llm.testing import chat

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def test_answers_arrive_in_prompt_order_with_usage(fake_openai, make_config):
    fake_openai.answer = lambda messages, i, serial: f"{messages[-1]['content']}#{i}"
    with LLMClient(make_config()) as client:
        out = client.complete([chat("alpha"), chat("beta"), chat("gamma")], n=2)
    assert [[a.text for a in answers] for answers in out] == [
        ["alpha#0", "alpha#1"], ["beta#0", "beta#1"], ["gamma#0", "gamma#1"]
    ]
    assert all(a.model == "fake-model" and a.finish_reason == "stop" and not a.cached for r in out for a in r)
    assert [a.index for a in out[0]] == [0, 1]
    assert fake_openai.request_count == 3  # n honoured: one request per prompt
    usage = client.usage
    assert usage["calls"] == 3 and usage["requests"] == 3 and usage["retries"] == 0
    assert usage["prompt_tokens"] == 3  # the fake bills one token per word
    assert usage["completion_tokens"] == 6
    assert sum(a.prompt_tokens for r in out for a in r) == usage["prompt_tokens"]
    assert sum(a.completion_tokens for r in out for a in r) == usage["completion_tokens"]


def test_transient_failures_are_retried_and_counted(fake_openai, make_config):
    fake_openai.hang_s = 3.0
    fake_openai.fail_next(429, 500, 503, "drop", "timeout", "garbage", "empty")
    with LLMClient(make_config(max_retries=7, timeout_s=0.5)) as client:
        [[answer]] = client.complete([chat("hello")], n=1)
    assert answer.text.startswith("```python")
    assert fake_openai.request_count == 8  # 7 failures + 1 success: the SDK made no hidden retries
    assert client.usage["retries"] == 7 and client.usage["requests"] == 8 and client.usage["calls"] == 1


def test_backoff_is_exponential_capped_and_seeded(fake_openai, make_config, monkeypatch):
    delays: list[float] = []
    monkeypatch.setattr("langprop.llm.openai_backend.time.sleep", delays.append)
    fake_openai.fail_next(500, 500, 500, 500, 500)

    def run() -> list[float]:
        delays.clear()
        cfg = make_config(max_retries=5, backoff_initial_s=1.0, backoff_max_s=6.0, seed=7)
        with LLMClient(cfg) as client:
            client.complete([chat("x")], n=1)
        return list(delays)

    first = run()
    assert len(first) == 5
    for k, delay in enumerate(first):  # jitter keeps each delay within [50 %, 100 %] of min(cap, 2^k)
        nominal = min(6.0, 2.0**k)
        assert 0.5 * nominal <= delay <= nominal
    fake_openai.fail_next(500, 500, 500, 500, 500)
    assert run() == first  # seeded jitter: reproducible


def test_retries_exhausted_raise_llm_unavailable_naming_endpoint(fake_openai, make_config):
    fake_openai.fail_next(500, 500, 500, 500)
    with LLMClient(make_config(max_retries=2)) as client, pytest.raises(LLMUnavailable) as info:
        client.complete([chat("hello")], n=1)
    message = str(info.value)
    assert fake_openai.base_url in message and "fake-model" in message
    assert "after 3 attempt(s)" in message and "HTTP 500" in message
    assert fake_openai.request_count == 3


def test_client_errors_are_not_retried(fake_openai, make_config):
    fake_openai.fail_next(401)
    cfg = make_config(api_key_env="LANGPROP_TEST_NO_SUCH_KEY")
    with LLMClient(cfg) as client, pytest.raises(LLMUnavailable) as info:
        client.complete([chat("hello")], n=1)
    assert fake_openai.request_count == 1
    assert "HTTP 401" in str(info.value) and "LANGPROP_TEST_NO_SUCH_KEY is not set" in str(info.value)


@pytest.mark.parametrize("n_mode", ["ignore", "reject"])
def test_n_fallback_to_separate_requests(make_config, n_mode):
    with FakeOpenAIServer(n_mode=n_mode) as server:
        with LLMClient(make_config(base_url=server.base_url, concurrency=1)) as client:
            first = client.complete([chat("one")], n=3)[0]
            assert client.backend.n_supported is False
            count_after_first = server.request_count
            second = client.complete([chat("two")], n=3)[0]
        assert len(first) == 3 and len(second) == 3
        assert len({a.text for a in first + second}) == 6  # each answer from its own request
        # ignore: 1 (n=3 → 1 choice) + 2 singles; reject: 1 refused + 3 singles. Then only singles.
        assert count_after_first == (3 if n_mode == "ignore" else 4)
        assert server.request_count - count_after_first == 3
        assert client.usage["retries"] == 0
        assert "n" not in server.requests[-1]  # fallback requests do not send n


def test_seeded_separate_requests_get_distinct_seeds(make_config):
    with FakeOpenAIServer(n_mode="ignore") as server:
        with LLMClient(make_config(base_url=server.base_url, seed=11)) as client:
            client.complete([chat("x")], n=3)
        assert [r.get("seed") for r in server.requests] == [11, 12, 13]


def test_extra_answers_for_a_cached_prompt_use_fresh_seeds(make_config, tmp_path):
    with FakeOpenAIServer(n_mode="ignore") as server:
        cfg = make_config(base_url=server.base_url, seed=5, cache_path=str(tmp_path / "c.sqlite"))
        with LLMClient(cfg) as client:
            client.complete([chat("x")], n=1)
        with LLMClient(cfg) as client:
            client.complete([chat("x")], n=3)
        assert [r.get("seed") for r in server.requests] == [5, 6, 7]


def test_requests_for_different_prompts_overlap(make_config):
    with FakeOpenAIServer(delay_s=0.4) as server:
        with LLMClient(make_config(base_url=server.base_url, concurrency=4)) as client:
            client.complete([chat(f"p{i}") for i in range(4)], n=1)
        assert server.max_active >= 2
    with FakeOpenAIServer(delay_s=0.05) as server:
        with LLMClient(make_config(base_url=server.base_url, concurrency=1)) as client:
            client.complete([chat(f"p{i}") for i in range(3)], n=1)
        assert server.max_active == 1


def test_failure_of_one_prompt_raises_after_others_land(fake_openai, make_config, tmp_path):
    fake_openai.answer = lambda messages, i, serial: "ok"
    cfg = make_config(max_retries=0, concurrency=1, cache_path=str(tmp_path / "c.sqlite"))
    fake_openai.fail_next(None, 500)  # first prompt fine, second fails
    with LLMClient(cfg) as client, pytest.raises(LLMUnavailable):
        client.complete([chat("a"), chat("b")], n=1)
    with LLMClient(cfg) as client:  # the answer that did arrive was cached
        out = client.complete([chat("a"), chat("b")], n=1)
    assert [r[0].cached for r in out] == [True, False]


def test_unreachable_base_url_fails_fast_with_clear_message():
    url = f"http://127.0.0.1:{free_port()}/v1"
    cfg = LLMConfig(base_url=url, model="m", timeout_s=1.0, max_retries=2, backoff_initial_s=0.01)
    started = time.monotonic()
    with LLMClient(cfg) as client, pytest.raises(LLMUnavailable) as info:
        client.complete([chat("hello")], n=2)
    assert time.monotonic() - started < 30  # generous: a hang would hit pytest's timeout instead
    message = str(info.value)
    assert url in message and "model=m" in message and "connection error" in message


def test_base_url_and_model_come_from_environment(fake_openai, monkeypatch):
    monkeypatch.setenv("LANGPROP_LLM_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("LANGPROP_LLM_MODEL", "env-model")
    with LLMClient(LLMConfig(backoff_initial_s=0.01)) as client:
        [[answer]] = client.complete([chat("hi")], n=1)
    assert client.base_url == fake_openai.base_url
    assert fake_openai.requests[0]["model"] == "env-model" and answer.model == "env-model"


def test_sampling_parameters_and_prefix_messages_are_sent(fake_openai, make_config):
    shot = [{"role": "user", "content": "example"}, {"role": "assistant", "content": "```python\npass\n```"}]
    cfg = make_config(temperature=0.3, max_tokens=50, stop=["\n```"], seed=3, prefix_messages=shot,
                      extra_params={"top_k": 20})
    with LLMClient(cfg) as client:
        client.complete([chat("task", system="be brief")], n=1)
    body = fake_openai.requests[0]
    assert (body["temperature"], body["max_tokens"], body["stop"], body["seed"]) == (0.3, 50, ["\n```"], 3)
    assert body["top_k"] == 20
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
    assert body["messages"][1]["content"] == "example" and body["messages"][-1]["content"] == "task"


def test_merge_system_folds_system_text_into_the_first_user_message(fake_openai, make_config):
    shot = [{"role": "user", "content": "example"}, {"role": "assistant", "content": "done"}]
    with LLMClient(make_config(merge_system=True, prefix_messages=shot)) as client:
        client.complete([chat("task", system="rules")], n=1)
    sent = fake_openai.requests[0]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[0]["content"] == "example" and sent[-1]["content"] == "rules\n\ntask"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"backend": "nope"}, "llm.backend"),
        ({"backend": "replay"}, "llm.replay_path"),
        ({"concurrency": 0}, "llm.concurrency"),
        ({"prices": {"m": {"input_per_1m": 1.0}}}, "llm.prices.m"),
    ],
)
def test_bad_config_names_the_field(overrides, field):
    with pytest.raises(LLMConfigError, match=field):
        LLMConfig(**overrides)


def _cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("OPENAI_")}
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(  # stdin really closed (fd 0 shut): any attempt to prompt would fail
        ["bash", "-c", 'exec "$@" 0<&-', "bash", sys.executable, "-m", "langprop.llm", *args],
        capture_output=True, text=True, timeout=120, env=env, cwd=REPO,
    )  # fmt: skip


def test_cli_never_reads_stdin_and_fails_with_one_line(fake_openai):
    fake_openai.fail_next(429, 500)
    ok = _cli(["hello", "--base_url", fake_openai.base_url, "--model", "m", "--n", "2", "--backoff_initial_s", "0.01"])
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.count("--- answer") == 2
    url = f"http://127.0.0.1:{free_port()}/v1"
    bad = _cli(["hello", "--base_url", url, "--max_retries", "1", "--backoff_initial_s", "0.01", "--timeout_s", "1"])
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: LLM unavailable at") and url in lines[0]


def test_config_from_hydra_and_omegaconf_is_plain():
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    node = OmegaConf.create({
        "_target_": "langprop.llm.LLMConfig", "model": "m", "stop": ["\n```"],
        "prices": {"m": {"input_per_1m": 1, "output_per_1m": 2}},
        "prefix_messages": [{"role": "user", "content": "hi"}], "extra_params": {"top_k": 3},
    })  # fmt: skip
    cfg = instantiate(node)
    assert isinstance(cfg, LLMConfig) and cfg.prices == {"m": {"input_per_1m": 1.0, "output_per_1m": 2.0}}
    assert type(cfg.stop) is list and type(cfg.prefix_messages[0]) is dict and type(cfg.extra_params) is dict
    structured = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(LLMConfig), {"model": "x"}))
    assert isinstance(structured, LLMConfig) and structured.resolved().model == "x"
