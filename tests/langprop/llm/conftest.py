"""Fixtures for the LLM client tests: the real openai SDK over real HTTP against a local fake server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from langprop.llm import LLMConfig
from langprop.llm.testing import fake_openai  # noqa: F401  (fixture)


@pytest.fixture
def make_config(fake_openai) -> Callable[..., LLMConfig]:  # noqa: F811
    """LLMConfig for the fake server with tiny timeouts/backoff so failure tests stay fast."""

    def make(**overrides: Any) -> LLMConfig:
        base: dict[str, Any] = dict(
            base_url=fake_openai.base_url,
            model="fake-model",
            timeout_s=5.0,
            max_retries=3,
            backoff_initial_s=0.01,
            backoff_max_s=0.05,
            concurrency=4,
        )
        base.update(overrides)
        return LLMConfig(**base)

    return make

