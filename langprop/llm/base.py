"""Shared types of the LLM client: messages, answers, backend results and the errors users can hit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "Message",
    "Answer",
    "Completion",
    "BackendResult",
    "Backend",
    "LLMError",
    "LLMConfigError",
    "LLMUnavailable",
    "BudgetExceeded",
    "ReplayMissError",
]

Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": ...}


class LLMError(RuntimeError):
    """Base of every error the LLM client raises on purpose (one clear message each)."""


class LLMConfigError(LLMError, ValueError):
    """A bad LLM configuration value or file; the message names the field or file."""


class LLMUnavailable(LLMError):
    """No answer could be obtained (after retries); the message names base_url, model and last error."""


class BudgetExceeded(LLMError):
    """The token or cost budget is spent, or the next request could overspend it."""


class ReplayMissError(LLMUnavailable):
    """The replay backend has no (more) recorded answer for a prompt; the message names the file(s)."""


@dataclass
class Answer:
    """One answer to one prompt, with the files that record it (for policy lineage)."""

    text: str
    model: str
    index: int
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False
    finish_reason: str | None = None
    prompt_file: str | None = None
    response_file: str | None = None


@dataclass
class Completion:
    """One choice as a backend returns it (before caching and logging)."""

    text: str
    finish_reason: str | None = None
    completion_tokens: int = 0
    model: str | None = None


@dataclass
class BackendResult:
    """All choices obtained for one prompt, with the usage actually billed for them."""

    completions: list[Completion]
    prompt_tokens: int = 0  # summed over every request made (separate calls re-send the prompt)
    completion_tokens: int = 0
    requests: int = 0  # successful HTTP requests
    extra: dict[str, Any] = field(default_factory=dict)


class Backend(Protocol):
    """Something that turns one prompt into ``n`` completions."""

    name: str
    concurrent: bool  # False: the client calls it in prompt order (deterministic replay)
    n_supported: bool | None  # None: unknown yet

    def complete(self, messages: list[Message], n: int, *, tag: str, seed: int | None) -> BackendResult: ...

    def describe(self) -> str: ...
