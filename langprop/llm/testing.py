"""pytest fixtures for code that talks to an LLM. Import them into a test module to use them::

    from langprop.llm.testing import fake_openai, local_llm  # noqa: F401

* ``fake_openai`` — a fresh :class:`~langprop.llm.fake_server.FakeOpenAIServer` per test (real HTTP).
* ``local_llm`` — session-wide real Gemma-3 270M served by llama-cpp-python
  (:class:`~langprop.llm.local_server.LocalOpenAIServer`); call ``local_llm.llm_config(...)`` for an
  LLMConfig pointing at it. Skips only when ``llama_cpp`` is not importable — unless the environment
  sets ``LANGPROP_REQUIRE_LOCAL_LLM=1`` (CI does), where a missing ``llama_cpp`` FAILS the tests that
  use it, so a run cannot go green on skips. One server is shared by every module that imports the
  fixture and is stopped by PID when the last user finishes.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest

from langprop.llm.fake_server import FakeOpenAIServer
from langprop.llm.local_server import INSTALL_HINT, LocalOpenAIServer, gemma_gguf_path

__all__ = ["fake_openai", "local_llm", "chat", "REQUIRE_ENV", "local_llm_required"]

REQUIRE_ENV = "LANGPROP_REQUIRE_LOCAL_LLM"

_shared_lock = threading.Lock()
_shared: LocalOpenAIServer | None = None
_users = 0


def chat(text: str, system: str | None = None) -> list[dict[str, str]]:
    """A one-turn prompt (optionally with a system message)."""
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]


def local_llm_required() -> bool:
    """True when ``LANGPROP_REQUIRE_LOCAL_LLM`` is set to a true value (1/true/yes): real-model tests must run."""
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in ("1", "true", "yes")


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture(scope="session")
def local_llm() -> Iterator[LocalOpenAIServer]:
    global _shared, _users
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        message = f"llama_cpp is not importable; to run real-model tests: {INSTALL_HINT}"
        if local_llm_required():
            pytest.fail(f"{REQUIRE_ENV}=1 but {message}", pytrace=False)
        pytest.skip(message)
    with _shared_lock:
        if _shared is None:
            _shared = LocalOpenAIServer(gemma_gguf_path()).start()
        _users += 1
        server = _shared
    try:
        yield server
    finally:
        with _shared_lock:
            _users -= 1
            if _users == 0 and _shared is not None:
                _shared.stop()
                _shared = None
