"""The OpenAI-protocol backend: the official ``openai`` SDK against any compatible ``base_url``.

Our retries are the only retries (the SDK's are disabled with ``max_retries=0``), so every attempt is
counted, the backoff is ours (exponential, capped, seeded jitter, honouring Retry-After), and nothing
ever waits for a person. Servers that reject ``n`` (an HTTP 400/422) or silently return fewer choices
are detected once; from then on the missing answers are fetched with separate ``n=1`` calls.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from typing import Any

import openai

from langprop.llm.base import BackendResult, Completion, LLMUnavailable, Message
from langprop.llm.budget import UsageMeter
from langprop.llm.config import LLMConfig

__all__ = ["OpenAIBackend", "is_retryable"]

log = logging.getLogger(__name__)

_RETRY_STATUS = {408, 409, 425, 429}
_N_REJECT_STATUS = {400, 422}
_PLACEHOLDER_KEY = "not-needed"  # local servers (llama.cpp, vLLM, Ollama) accept any key


def is_retryable(exc: BaseException) -> bool:
    """429, 5xx, timeouts and connection errors are worth another try; other 4xx are not."""
    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in _RETRY_STATUS or exc.status_code >= 500
    return False


def _describe_error(exc: BaseException) -> str:
    if isinstance(exc, openai.APIStatusError):
        body = exc.body if isinstance(exc.body, str | dict) else None
        detail = (body.get("message") if isinstance(body, dict) else body) or exc.message
        return f"HTTP {exc.status_code}: {str(detail)[:300]}"
    if isinstance(exc, openai.APITimeoutError):
        return "request timed out"
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        return f"connection error: {cause or exc}"[:300]
    if isinstance(exc, InvalidResponse):
        return f"invalid response: {exc}"
    return f"invalid response ({type(exc).__name__}: {exc})"[:300]


class OpenAIBackend:
    """Chat completions over HTTP with bounded retries and ``n`` fallback."""

    name = "openai"
    concurrent = True

    def __init__(self, config: LLMConfig, meter: UsageMeter) -> None:
        cfg = config.resolved()
        self.config = cfg
        self.model: str = cfg.model  # type: ignore[assignment]  # resolved() always sets it
        self.base_url = cfg.base_url
        self.meter = meter
        self.n_supported: bool | None = None
        self._rng = random.Random(cfg.seed if cfg.seed is not None else 0)
        self._rng_lock = threading.Lock()
        api_key = os.environ.get(cfg.api_key_env) or _PLACEHOLDER_KEY
        self._api_key_missing = not os.environ.get(cfg.api_key_env)
        self.client = openai.OpenAI(
            api_key=api_key,
            base_url=cfg.base_url,
            timeout=cfg.timeout_s,
            max_retries=0,  # ours are the only retries
        )

    def describe(self) -> str:
        return f"base_url={self.client.base_url} model={self.model}"

    # -- one prompt -------------------------------------------------------------------------------
    def complete(self, messages: list[Message], n: int, *, tag: str, seed: int | None) -> BackendResult:
        result = BackendResult(completions=[])
        rejected: str | None = None
        if n > 1 and self.n_supported is not False:
            try:
                self._request(messages, n, seed, result)
            except _NRejected as exc:
                rejected = f"server rejected n={n} ({exc})"
            else:
                if len(result.completions) < n:
                    self._mark_n_unsupported(f"server returned {len(result.completions)} choice(s) for n={n}")
                else:
                    self.n_supported = True
        # Separate calls for what is still missing; vary the seed so the answers are not all identical.
        while len(result.completions) < n:
            index = len(result.completions)
            self._request(messages, 1, None if seed is None else seed + index, result)
            if rejected is not None:  # n=1 worked, so it really was `n` the server refused
                self._mark_n_unsupported(rejected)
                rejected = None
        del result.completions[n:]
        return result

    def _mark_n_unsupported(self, why: str) -> None:
        if self.n_supported is not False:
            log.warning("%s: %s; falling back to separate n=1 requests", self.describe(), why)
        self.n_supported = False

    # -- one HTTP request with retries --------------------------------------------------------------
    def _request(self, messages: list[Message], n: int, seed: int | None, result: BackendResult) -> None:
        params: dict[str, Any] = {"model": self.model, "messages": messages}
        if n > 1:
            params["n"] = n
        cfg = self.config
        for name in ("temperature", "max_tokens", "stop"):
            if getattr(cfg, name) is not None:
                params[name] = getattr(cfg, name)
        if seed is not None:
            params["seed"] = seed
        if cfg.extra_params:
            params["extra_body"] = dict(cfg.extra_params)
        last_error: BaseException | None = None
        attempts = cfg.max_retries + 1
        for attempt in range(attempts):
            self.meter.add(requests=1)
            try:
                response = self.client.chat.completions.create(**params)
                _check_response(response)
            except openai.APIStatusError as exc:
                if n > 1 and exc.status_code in _N_REJECT_STATUS:
                    raise _NRejected(_describe_error(exc)) from exc
                if not is_retryable(exc):
                    raise self._unavailable(exc, attempt + 1) from exc
                last_error = exc
            except openai.APIConnectionError as exc:
                last_error = exc
            except (openai.OpenAIError, ValueError) as exc:  # a body that is not JSON / has no choices
                last_error = exc
            else:
                self._collect(response, result)
                return
            if attempt + 1 < attempts:
                delay = self._backoff(attempt, last_error)
                log.info(
                    "%s: %s; retry %d/%d in %.2fs",
                    self.describe(), _describe_error(last_error), attempt + 1, cfg.max_retries, delay,
                )
                self.meter.add(retries=1)
                time.sleep(delay)
        assert last_error is not None
        raise self._unavailable(last_error, attempts) from last_error

    def _collect(self, response: Any, result: BackendResult) -> None:
        choices = list(response.choices or [])
        usage = getattr(response, "usage", None)
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        texts = [(c.message.content or "") if c.message is not None else "" for c in choices]
        # The API bills completion tokens per request; split them over the choices by length.
        total_chars = sum(len(t) for t in texts) or 1
        shares = [completion_tokens * len(t) // total_chars for t in texts]
        if shares:
            shares[-1] += completion_tokens - sum(shares)
        for choice, text, share in zip(choices, texts, shares, strict=True):
            result.completions.append(
                Completion(
                    text=text,
                    finish_reason=choice.finish_reason,
                    completion_tokens=share,
                    model=getattr(response, "model", None) or self.model,
                )
            )
        result.prompt_tokens += prompt_tokens
        result.completion_tokens += completion_tokens
        result.requests += 1
        self.meter.add(model=self.model, calls=1, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)

    def _backoff(self, attempt: int, error: BaseException | None) -> float:
        cfg = self.config
        delay = min(cfg.backoff_max_s, cfg.backoff_initial_s * (2**attempt))
        with self._rng_lock:
            delay *= 0.5 + 0.5 * self._rng.random()  # jitter: spread concurrent retries apart
        if isinstance(error, openai.APIStatusError):
            retry_after = error.response.headers.get("retry-after")
            try:
                if retry_after is not None:
                    delay = max(delay, min(cfg.backoff_max_s, float(retry_after)))
            except ValueError:
                pass
        return delay

    def _unavailable(self, exc: BaseException, attempts: int) -> LLMUnavailable:
        hint = ""
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError) and self._api_key_missing:
            hint = f" (env var {self.config.api_key_env} is not set)"
        elif isinstance(exc, openai.NotFoundError):
            hint = " (check the model name and that base_url ends with /v1)"
        return LLMUnavailable(
            f"LLM unavailable at {self.describe()} after {attempts} attempt(s): {_describe_error(exc)}{hint}"
        )

    def close(self) -> None:
        self.client.close()


class InvalidResponse(ValueError):
    """An HTTP 200 whose body is not a usable chat completion (retried like a server error)."""


def _check_response(response: Any) -> None:
    if not getattr(response, "choices", None):
        extra = getattr(response, "model_extra", None) or {}
        detail = f": {extra['error']}" if "error" in extra else ""
        raise InvalidResponse(f"response has no choices{detail}"[:300])


class _NRejected(Exception):
    """The server refused a request only because of ``n`` > 1."""
