"""LLMConfig: where the model lives, how to sample from it, and what it may cost.

Values left as ``None`` are filled from the environment by :meth:`LLMConfig.resolved`, so the same
command runs against OpenAI, vLLM, Ollama or a llama.cpp server by changing only the environment
(see docs/llm-endpoints.md).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from langprop.llm.base import LLMConfigError, Message

__all__ = ["LLMConfig", "DEFAULT_MODEL", "BASE_URL_ENV_VARS", "MODEL_ENV_VAR"]

DEFAULT_MODEL = "gpt-4o-mini"
BASE_URL_ENV_VARS = ("LANGPROP_LLM_BASE_URL", "OPENAI_BASE_URL")  # first one set wins
MODEL_ENV_VAR = "LANGPROP_LLM_MODEL"
_BACKENDS = ("openai", "replay")
_PRICE_KEYS = ("input_per_1m", "output_per_1m")


def _plain(value: Any) -> Any:
    """OmegaConf containers (or any mapping/sequence) to plain dicts/lists, for JSON and cache keys."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple) or type(value).__name__ == "ListConfig":
        return [_plain(v) for v in value]
    return value


@dataclass
class LLMConfig:
    """Everything the LLM client needs; Hydra can instantiate it directly (``_target_``)."""

    backend: str = "openai"  # "openai" | "replay"
    base_url: str | None = None  # else env LANGPROP_LLM_BASE_URL, then OPENAI_BASE_URL, then OpenAI
    model: str | None = None  # else env LANGPROP_LLM_MODEL, then DEFAULT_MODEL
    api_key_env: str = "OPENAI_API_KEY"  # name of the env var holding the key (never the key itself)
    temperature: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    seed: int | None = None
    extra_params: dict[str, Any] = field(default_factory=dict)  # sent as-is in the request body, e.g.
    # {"max_completion_tokens": 512} for models that refuse max_tokens, {"top_k": 20} for vLLM
    timeout_s: float = 120.0  # per HTTP request
    max_retries: int = 5  # retries after the first attempt, on 429/5xx/timeouts/connection errors
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0
    concurrency: int = 4  # prompts in flight at once
    cache_path: str | None = None  # sqlite file; None disables the cache
    replay_path: str | None = None  # recorded answers (file or directory) for backend="replay"
    replay_default: str | None = None  # answer served when no recorded entry matches (else an error)
    record_path: str | None = None  # directory: every answer is also saved here in the replay format
    budget_tokens: int | None = None  # prompt + completion tokens, over the whole (resumed) run
    budget_cost: float | None = None  # in the currency of `prices`
    prices: dict[str, dict[str, float]] = field(default_factory=dict)  # model -> {input_per_1m, output_per_1m}
    prefix_messages: list[Message] = field(default_factory=list)  # few-shot turns put after system msgs
    merge_system: bool = False  # fold system messages into the first user message (Gemma has no system role)

    def __post_init__(self) -> None:
        # Hydra/OmegaConf hand over ListConfig/DictConfig: normalise to plain containers.
        if self.stop is not None:
            self.stop = [self.stop] if isinstance(self.stop, str) else [str(s) for s in self.stop]
        self.prices = {str(k): {str(a): float(b) for a, b in dict(v).items()} for k, v in dict(self.prices).items()}
        self.prefix_messages = [dict(m) if isinstance(m, Mapping) else m for m in self.prefix_messages]
        self.extra_params = _plain(self.extra_params)
        self.validate()

    def validate(self) -> None:
        """Raise LLMConfigError naming the first bad field."""
        if self.backend not in _BACKENDS:
            raise LLMConfigError(f"llm.backend: unknown backend {self.backend!r} (expected one of {_BACKENDS})")
        if self.backend == "replay" and not self.replay_path:
            raise LLMConfigError("llm.replay_path: required when llm.backend is 'replay'")
        for name in ("timeout_s", "backoff_initial_s", "backoff_max_s"):
            if float(getattr(self, name)) <= 0:
                raise LLMConfigError(f"llm.{name}: must be > 0, got {getattr(self, name)!r}")
        if int(self.max_retries) < 0:
            raise LLMConfigError(f"llm.max_retries: must be >= 0, got {self.max_retries!r}")
        if int(self.concurrency) < 1:
            raise LLMConfigError(f"llm.concurrency: must be >= 1, got {self.concurrency!r}")
        if self.max_tokens is not None and int(self.max_tokens) < 1:
            raise LLMConfigError(f"llm.max_tokens: must be >= 1, got {self.max_tokens!r}")
        for budget in ("budget_tokens", "budget_cost"):
            value = getattr(self, budget)
            if value is not None and float(value) < 0:
                raise LLMConfigError(f"llm.{budget}: must be >= 0, got {value!r}")
        for model, price in dict(self.prices).items():
            missing = [k for k in _PRICE_KEYS if k not in price]
            if missing:
                raise LLMConfigError(f"llm.prices.{model}: missing {', '.join(missing)}")
        for i, msg in enumerate(self.prefix_messages):
            if not isinstance(msg, dict) or msg.get("role") not in ("system", "user", "assistant"):
                raise LLMConfigError(f"llm.prefix_messages[{i}]: needs role system/user/assistant and content")

    def resolved(self) -> LLMConfig:
        """A copy with base_url and model filled from the environment where they were left unset."""
        base_url = self.base_url or next((os.environ[v] for v in BASE_URL_ENV_VARS if os.environ.get(v)), None)
        model = self.model or os.environ.get(MODEL_ENV_VAR) or DEFAULT_MODEL
        return dataclasses.replace(self, base_url=base_url, model=model)

    def sampling_params(self) -> dict[str, Any]:
        """Parameters that change the answers; part of the cache key."""
        params: dict[str, Any] = {}
        for name in ("temperature", "max_tokens", "stop", "seed"):
            value = getattr(self, name)
            if value is not None:
                params[name] = list(value) if name == "stop" else value
        if self.extra_params:
            params["extra"] = dict(self.extra_params)
        return params

    def price_for(self, model: str) -> dict[str, float] | None:
        return self.prices.get(model)
