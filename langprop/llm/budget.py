"""Token and cost accounting with a hard budget that holds under concurrent requests.

Before a request is sent, its worst case (estimated prompt tokens + ``max_tokens`` per answer, or the
mean answer length seen so far when ``max_tokens`` is unset) is *reserved*; a request whose reservation
would take spent + reserved past the budget is refused with BudgetExceeded. When the answer arrives the
reservation is replaced by the billed usage. Cached answers never reach this meter: they cost nothing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from langprop.llm.base import BudgetExceeded, LLMConfigError, Message

__all__ = ["UsageMeter", "Reservation", "estimate_prompt_tokens"]

_COUNTERS = ("prompt_tokens", "completion_tokens", "calls", "requests", "retries", "cache_hits", "answers")


def estimate_prompt_tokens(messages: list[Message]) -> int:
    """Rough upper-ish estimate (≈4 characters per token plus per-message overhead); no tokenizer needed."""
    return sum(len(m.get("content") or "") // 3 + 4 for m in messages) + 2


@dataclass
class Reservation:
    tokens: int
    cost: float


class UsageMeter:
    """Thread-safe usage counters, cost, and budget reservations."""

    def __init__(
        self,
        budget_tokens: int | None = None,
        budget_cost: float | None = None,
        prices: dict[str, dict[str, float]] | None = None,
    ) -> None:
        self.budget_tokens = budget_tokens
        self.budget_cost = budget_cost
        self.prices = dict(prices or {})
        self._lock = threading.Lock()
        self._counts: dict[str, int] = dict.fromkeys(_COUNTERS, 0)
        self._cost = 0.0
        self._reserved = Reservation(0, 0.0)

    # -- prices -----------------------------------------------------------------------------------
    def check_model(self, model: str) -> None:
        if self.budget_cost is not None and model not in self.prices:
            raise LLMConfigError(f"llm.prices: no price for model {model!r}, but llm.budget_cost is set")

    def cost_of(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        price = self.prices.get(model)
        if price is None:
            return 0.0
        return (prompt_tokens * price["input_per_1m"] + completion_tokens * price["output_per_1m"]) / 1e6

    # -- budget -----------------------------------------------------------------------------------
    def _spent_tokens(self) -> int:
        return self._counts["prompt_tokens"] + self._counts["completion_tokens"]

    def exhausted(self) -> str | None:
        """Why the budget is spent, or None."""
        with self._lock:
            return self._exhausted_locked()

    def _exhausted_locked(self) -> str | None:
        if self.budget_tokens is not None and self._spent_tokens() >= self.budget_tokens:
            return f"token budget spent: {self._spent_tokens()} of {self.budget_tokens} tokens used"
        if self.budget_cost is not None and self._cost >= self.budget_cost:
            return f"cost budget spent: {self._cost:.6f} of {self.budget_cost} used"
        return None

    def reserve(
        self, model: str, messages: list[Message], n_answers: int, n_requests: int, max_tokens: int | None
    ) -> Reservation:
        """Reserve the worst case of a request; raises BudgetExceeded if it might not fit."""
        prompt = estimate_prompt_tokens(messages) * max(1, n_requests)
        with self._lock:
            if max_tokens is not None:
                per_answer = max_tokens
            elif self._counts["answers"]:
                per_answer = self._counts["completion_tokens"] // max(1, self._counts["answers"] - self._counts["cache_hits"])
            else:
                per_answer = 0
            res = Reservation(prompt + per_answer * n_answers, self.cost_of(model, prompt, per_answer * n_answers))
            reason = self._exhausted_locked()
            if reason is None and self.budget_tokens is not None:
                projected = self._spent_tokens() + self._reserved.tokens + res.tokens
                if projected > self.budget_tokens:
                    reason = (
                        f"next request could exceed the token budget: {self._spent_tokens()} used + "
                        f"{self._reserved.tokens} in flight + ~{res.tokens} estimated > {self.budget_tokens}"
                    )
            if reason is None and self.budget_cost is not None:
                projected_cost = self._cost + self._reserved.cost + res.cost
                if projected_cost > self.budget_cost:
                    reason = (
                        f"next request could exceed the cost budget: {self._cost:.6f} used + "
                        f"{self._reserved.cost:.6f} in flight + ~{res.cost:.6f} estimated > {self.budget_cost}"
                    )
            if reason is not None:
                raise BudgetExceeded(f"LLM budget: {reason}")
            self._reserved = Reservation(self._reserved.tokens + res.tokens, self._reserved.cost + res.cost)
            return res

    def release(self, res: Reservation) -> None:
        with self._lock:
            self._reserved = Reservation(self._reserved.tokens - res.tokens, self._reserved.cost - res.cost)

    # -- counting ---------------------------------------------------------------------------------
    def add(self, model: str | None = None, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                self._counts[name] += int(value)
            if model is not None:
                self._cost += self.cost_of(
                    model, int(counts.get("prompt_tokens", 0)), int(counts.get("completion_tokens", 0))
                )

    @property
    def usage(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = dict(self._counts)
            out["total_tokens"] = self._spent_tokens()
            out["cost"] = self._cost
            return out

    def state_dict(self) -> dict[str, Any]:
        with self._lock:
            return {"counts": dict(self._counts), "cost": self._cost}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with self._lock:
            self._counts = dict.fromkeys(_COUNTERS, 0)
            self._counts.update({k: int(v) for k, v in state.get("counts", {}).items() if k in self._counts})
            self._cost = float(state.get("cost", 0.0))
