"""Disk cache, token/cost accounting, hard budget and resume of the counters."""

from __future__ import annotations

import multiprocessing

import pytest

from langprop.llm import BudgetExceeded, LLMClient
from langprop.llm.base import Completion
from langprop.llm.cache import AnswerCache, cache_key
from langprop.llm.testing import chat


def test_warm_cache_makes_zero_requests_and_same_answers(fake_openai, make_config, tmp_path):
    cfg = make_config(cache_path=str(tmp_path / "llm.sqlite"), temperature=0.7)
    prompts = [chat("alpha"), chat("beta")]
    with LLMClient(cfg) as client:
        cold = client.complete(prompts, n=2)
    sent = fake_openai.request_count
    assert sent == 2
    with LLMClient(cfg) as client:
        warm = client.complete(prompts, n=2)
        usage = client.usage
    assert fake_openai.request_count == sent  # zero requests
    assert [[a.text for a in r] for r in warm] == [[a.text for a in r] for r in cold]
    assert all(a.cached and a.prompt_tokens == 0 and a.completion_tokens == 0 for r in warm for a in r)
    assert usage["calls"] == 0 and usage["cache_hits"] == 4 and usage["total_tokens"] == 0


def test_cache_key_covers_model_parameters_and_index(fake_openai, make_config, tmp_path):
    cache = str(tmp_path / "llm.sqlite")
    with LLMClient(make_config(cache_path=cache)) as client:
        two = client.complete([chat("q")], n=2)[0]
    with LLMClient(make_config(cache_path=cache)) as client:  # more answers: only the missing one is asked
        three = client.complete([chat("q")], n=3)[0]
    assert [a.text for a in three[:2]] == [a.text for a in two] and three[2].text not in {a.text for a in two}
    assert fake_openai.requests[-1].get("n") in (None, 1)
    before = fake_openai.request_count
    for changed in (make_config(cache_path=cache, temperature=0.9), make_config(cache_path=cache, model="other")):
        with LLMClient(changed) as client:
            assert not client.complete([chat("q")], n=1)[0][0].cached
    assert fake_openai.request_count == before + 2
    assert cache_key("m", chat("q"), {}, 0) != cache_key("m", chat("q"), {}, 1)


def _hammer(path: str, worker: int) -> None:
    cache = AnswerCache(path)
    for i in range(40):
        key = cache_key("m", chat(f"shared {i}"), {}, 0)
        cache.put(key, 0, Completion(text=f"w{worker}", completion_tokens=1), "m")
        cache.put(cache_key("m", chat(f"own {worker} {i}"), {}, 0), 0, Completion(text="x"), "m")
    cache.close()


def test_cache_is_safe_across_processes(tmp_path):
    path = str(tmp_path / "shared.sqlite")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_hammer, args=(path, w)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    cache = AnswerCache(path)
    assert len(cache) == 40 + 3 * 40
    winners = {cache.get(cache_key("m", chat(f"shared {i}"), {}, 0)).text for i in range(40)}
    assert winners <= {"w0", "w1", "w2"}  # one consistent answer per key, first writer wins


def test_budget_refuses_a_request_that_could_overspend(fake_openai, make_config):
    fake_openai.answer = lambda messages, i, serial: "one two three four five"  # 5 tokens per answer
    # Worst case of one prompt: ~6 estimated prompt tokens + 10 max_tokens; the budget fits one, not two.
    cfg = make_config(budget_tokens=30, max_tokens=10, concurrency=1)
    with LLMClient(cfg) as client:
        client.complete([chat("first prompt")], n=1)
        spent = client.usage["total_tokens"]
        assert spent == 2 + 5
        with pytest.raises(BudgetExceeded, match="token budget"):
            client.complete([chat("second prompt " * 5)], n=1)
    assert fake_openai.request_count == 1  # the risky request was never sent


def test_budget_once_spent_stops_everything_but_cached_answers(fake_openai, make_config, tmp_path):
    fake_openai.answer = lambda messages, i, serial: "word " * 30
    cfg = make_config(budget_tokens=20, cache_path=str(tmp_path / "c.sqlite"))
    with LLMClient(cfg) as client:
        client.complete([chat("a long prompt with many words in it")], n=1)  # no max_tokens: fits the estimate
        assert client.usage["total_tokens"] > 20
        with pytest.raises(BudgetExceeded, match="spent"):
            client.complete([chat("next")], n=1)
        # a cached answer costs nothing, so it is still served
        [[again]] = client.complete([chat("a long prompt with many words in it")], n=1)
        assert again.cached
    assert fake_openai.request_count == 1


def test_cost_accounting_and_cost_budget(fake_openai, make_config):
    fake_openai.answer = lambda messages, i, serial: "a b c d"  # 4 completion tokens
    prices = {"fake-model": {"input_per_1m": 2_000_000.0, "output_per_1m": 10_000_000.0}}  # $2 / $10 per token
    with LLMClient(make_config(prices=prices, budget_cost=150.0, max_tokens=4, concurrency=1)) as client:
        client.complete([chat("x y z")], n=2)
        assert client.usage["cost"] == pytest.approx(3 * 2 + 8 * 10)
        with pytest.raises(BudgetExceeded, match="cost budget"):
            client.complete([chat("more")], n=2)


def test_budget_holds_under_concurrency(fake_openai, make_config):
    fake_openai.delay_s = 0.2
    cfg = make_config(budget_tokens=60, max_tokens=20, concurrency=4)
    with LLMClient(cfg) as client, pytest.raises(BudgetExceeded):
        client.complete([chat(f"prompt {i}") for i in range(6)], n=1)
    # each reservation is ~28 tokens: at most two could be in flight together within 60
    assert fake_openai.request_count <= 2


def test_state_dict_resumes_usage_and_budget(fake_openai, make_config, tmp_path):
    cfg = make_config(budget_tokens=25, concurrency=1)
    with LLMClient(cfg, log_dir=tmp_path) as client:
        client.complete([chat("one two three")], n=2)
        state = client.state_dict()
    assert state["usage"]["counts"]["calls"] == 1 and state["next_seq"] == 1
    with LLMClient(cfg, log_dir=tmp_path) as resumed:
        resumed.load_state_dict(state)
        assert resumed.usage == client.usage
        with pytest.raises(BudgetExceeded):
            resumed.complete([chat("four")], n=1)


def test_missing_price_with_cost_budget_is_a_config_error(fake_openai, make_config):
    from langprop.llm import LLMConfigError

    with pytest.raises(LLMConfigError, match="llm.prices"):
        LLMClient(make_config(budget_cost=1.0))
