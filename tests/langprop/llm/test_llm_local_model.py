"""The local llama.cpp server utility, and (slow) the real Gemma-3 270M through LLMClient."""

from __future__ import annotations

import os
import urllib.request

import pytest

from langprop.llm import LLMClient
from langprop.llm.local_server import LocalOpenAIServer, LocalServerError
from langprop.llm.testing import chat, local_llm  # noqa: F401  (local_llm: fixture)


def test_server_that_cannot_start_reports_its_log_and_is_gone(tmp_path):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed")
    bogus = tmp_path / "not-a-model.gguf"
    bogus.write_bytes(b"this is not a gguf file")
    server = LocalOpenAIServer(bogus, startup_timeout_s=60, log_path=tmp_path / "server.log")
    with pytest.raises(LocalServerError) as info:
        server.start()
    assert "exited with code" in str(info.value) and str(tmp_path / "server.log") in str(info.value)
    assert server.process is None


@pytest.mark.slow
@pytest.mark.timeout(1200)  # may pay the shared model's start-up on 2 loaded CPU cores
def test_real_gemma_gives_two_fenced_answers(local_llm, tmp_path):  # noqa: F811
    cfg = local_llm.llm_config(max_tokens=96, temperature=0.8, seed=1, cache_path=str(tmp_path / "c.sqlite"))
    prompt = chat("Write a Python function `mul(a, b)` that returns the product of a and b.",
                  system="You write short, correct Python code.")  # folded into the user turn for Gemma
    with LLMClient(cfg, log_dir=tmp_path / "run") as client:
        [answers] = client.complete([prompt], n=2, tags=["setup_0"])
        usage = client.usage
    assert len(answers) == 2
    assert all(a.text.lstrip().startswith("```") for a in answers), [a.text for a in answers]
    assert all(a.model and a.completion_tokens > 0 and os.path.exists(a.response_file) for a in answers)
    assert usage["calls"] == 2  # llama.cpp ignores n: the client fell back to separate requests
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    with LLMClient(cfg) as client:  # warm cache: no request reaches the model
        assert [a.text for a in client.complete([prompt], n=2)[0]] == [a.text for a in answers]
        assert client.usage["calls"] == 0


@pytest.mark.slow
@pytest.mark.timeout(1200)  # may pay the shared model's start-up on 2 loaded CPU cores
def test_local_server_is_ended_by_its_pid(local_llm):  # noqa: F811
    with LocalOpenAIServer(local_llm.model_path) as server:
        pid = server.process.pid
        assert server.port != local_llm.port  # its own free port
        with urllib.request.urlopen(f"{server.base_url}/models", timeout=5) as resp:
            assert server.model in resp.read().decode()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped: nothing left behind
    assert local_llm.process.poll() is None  # the shared server is untouched
