"""OpenAI-compatible LLM client for LangProp: retries, n answers, concurrency, disk cache,
token/cost budget, replay of recorded answers, and a readable transcript of every prompt and answer."""

from langprop.llm.base import (
    Answer,
    BudgetExceeded,
    LLMConfigError,
    LLMError,
    LLMUnavailable,
    Message,
    ReplayMissError,
)
from langprop.llm.client import LLMClient
from langprop.llm.config import LLMConfig

__all__ = [
    "Answer",
    "BudgetExceeded",
    "LLMClient",
    "LLMConfig",
    "LLMConfigError",
    "LLMError",
    "LLMUnavailable",
    "Message",
    "ReplayMissError",
]
