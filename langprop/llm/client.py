"""LLMClient: n answers for each of many prompts — cached, budgeted, logged, concurrent.

The flow for one ``complete()`` call:
  1. every prompt gets a sequence number (in prompt order) and its prompt file;
  2. answers already in the disk cache are taken from it (free, no request);
  3. the missing answers are requested from the backend, prompts in parallel (``concurrency``), each
     request first reserving its worst-case tokens/cost against the budget;
  4. each answer is written to ``responses/`` (and ``record_path``) and returned with those paths.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langprop.llm.base import Answer, Backend, BackendResult, Completion, LLMConfigError, Message
from langprop.llm.budget import UsageMeter
from langprop.llm.cache import AnswerCache, cache_key
from langprop.llm.config import LLMConfig
from langprop.llm.openai_backend import OpenAIBackend
from langprop.llm.replay import ReplayBackend, prompt_sha256
from langprop.llm.transcript import Transcript

__all__ = ["LLMClient"]

log = logging.getLogger(__name__)


@dataclass
class _Job:
    """The state of one prompt during a complete() call."""

    index: int
    tag: str
    messages: list[Message]  # as sent (prefix messages included)
    seq: int
    prompt_file: str | None
    keys: list[str]
    found: dict[int, Completion]  # answer index -> cached completion
    fresh: dict[int, Completion]
    prompt_tokens: dict[int, int] = field(default_factory=dict)  # answer index -> billed share


class LLMClient:
    """See module docstring. Thread-compatible: call ``complete`` from one thread at a time."""

    def __init__(self, config: LLMConfig, log_dir: str | Path | None = None) -> None:
        self.config = config.resolved()
        cfg = self.config
        self.meter = UsageMeter(cfg.budget_tokens, cfg.budget_cost, cfg.prices)
        self.backend: Backend
        if cfg.backend == "replay":
            self.model = config.model or "replay"
            self.backend = ReplayBackend(cfg.replay_path or "", self.meter, self.model, cfg.replay_default)
            self.cache = None  # replays are deterministic already; never mix them into a real cache
        else:
            self.model = cfg.model or ""
            self.meter.check_model(self.model)
            self.backend = OpenAIBackend(cfg, self.meter)
            self.cache = AnswerCache(cfg.cache_path) if cfg.cache_path else None
        self.transcript = Transcript(log_dir) if log_dir is not None else None
        self.recorder = Transcript(cfg.record_path, prompts=False, subdir="") if cfg.record_path else None
        self._pool: ThreadPoolExecutor | None = None

    @property
    def base_url(self) -> str | None:
        return self.config.base_url

    @property
    def usage(self) -> dict[str, Any]:
        """prompt_tokens, completion_tokens, total_tokens, cost, calls, requests, retries, cache_hits, answers."""
        return self.meter.usage

    # -- checkpointing --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"usage": self.meter.state_dict()}
        if self.transcript is not None:
            state["next_seq"] = self.transcript.next_seq
        if isinstance(self.backend, ReplayBackend):
            state["replay_served"] = [e.served for e in self.backend.entries]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.meter.load_state_dict(state.get("usage", {}))
        if self.transcript is not None and "next_seq" in state:
            self.transcript.advance_to(int(state["next_seq"]))
        served = state.get("replay_served")
        if isinstance(self.backend, ReplayBackend) and served and len(served) == len(self.backend.entries):
            for entry, count in zip(self.backend.entries, served, strict=True):
                entry.served = int(count)

    # -- the call -------------------------------------------------------------------------------
    def complete(
        self, prompts: list[list[Message]], n: int, tags: list[str] | None = None
    ) -> list[list[Answer]]:
        """``n`` answers for each prompt, in prompt order. Raises BudgetExceeded, LLMUnavailable."""
        if n < 1:
            raise LLMConfigError(f"n must be >= 1, got {n}")
        tags = list(tags) if tags is not None else [f"prompt_{i}" for i in range(len(prompts))]
        if len(tags) != len(prompts):
            raise LLMConfigError(f"got {len(tags)} tags for {len(prompts)} prompts")
        started = time.perf_counter()
        seqs = self.transcript.allocate(len(prompts)) if self.transcript else list(range(len(prompts)))
        jobs = [self._prepare(i, tag, prompt, seq, n) for i, (prompt, tag, seq) in enumerate(zip(prompts, tags, seqs, strict=True))]
        todo = [job for job in jobs if len(job.found) < n]
        self._run(todo, n)
        answers = [self._finish(job, n) for job in jobs]
        hits = sum(len(job.found) for job in jobs)
        self.meter.add(cache_hits=hits, answers=len(jobs) * n)
        log.info(
            "LLM %s: %d prompt(s) x n=%d: %d cached, %d new in %.2fs",
            self.backend.describe(), len(jobs), n, hits, len(jobs) * n - hits, time.perf_counter() - started,
        )
        return answers

    def _prepare(self, i: int, tag: str, prompt: list[Message], seq: int, n: int) -> _Job:
        messages = self._with_prefix(self._check_prompt(i, prompt))
        params = self.config.sampling_params()
        keys = [cache_key(self.model, messages, params, k) for k in range(n)]
        found: dict[int, Completion] = {}
        if self.cache is not None:
            for k, key in enumerate(keys):
                hit = self.cache.get(key)
                if hit is not None:
                    found[k] = hit
        prompt_file = None
        if self.transcript is not None:
            header = {"model": self.model, "backend": self.backend.describe(), "n": n, "params": params,
                      "prompt_sha256": prompt_sha256(messages)}
            prompt_file = self.transcript.write_prompt(seq, tag, messages, header)
        return _Job(i, tag, messages, seq, prompt_file, keys, found, {})

    def _check_prompt(self, i: int, prompt: list[Message]) -> list[Message]:
        if not prompt:
            raise LLMConfigError(f"prompts[{i}] is empty")
        out = []
        for j, msg in enumerate(prompt):
            if msg.get("role") not in ("system", "user", "assistant") or not isinstance(msg.get("content"), str):
                raise LLMConfigError(f"prompts[{i}][{j}]: need role system/user/assistant and string content")
            out.append({"role": msg["role"], "content": msg["content"]})
        return out

    def _with_prefix(self, messages: list[Message]) -> list[Message]:
        """Apply ``merge_system``, then insert the few-shot turns after the leading system messages."""
        if self.config.merge_system:
            system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
            messages = [m for m in messages if m["role"] != "system"]
            if system:
                first = next((i for i, m in enumerate(messages) if m["role"] == "user"), None)
                if first is None:
                    messages = [{"role": "user", "content": system}, *messages]
                else:
                    merged = {"role": "user", "content": f"{system}\n\n{messages[first]['content']}"}
                    messages = [*messages[:first], merged, *messages[first + 1:]]
        if not self.config.prefix_messages:
            return messages
        cut = 0
        while cut < len(messages) and messages[cut]["role"] == "system":
            cut += 1
        prefix = [{"role": m["role"], "content": m["content"]} for m in self.config.prefix_messages]
        return messages[:cut] + prefix + messages[cut:]

    def _run(self, todo: list[_Job], n: int) -> None:
        if not todo:
            return
        if not self.backend.concurrent or self.config.concurrency == 1 or len(todo) == 1:
            for job in todo:  # in prompt order: deterministic for the replay backend
                self._fetch(job, n)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.config.concurrency, thread_name_prefix="langprop-llm")
        futures: list[Future[None]] = [self._pool.submit(self._fetch, job, n) for job in todo]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        if pending:  # something failed: start nothing new, let in-flight requests land in the cache
            for fut in pending:
                fut.cancel()
            wait(pending)
        for fut in futures:  # first error in prompt order
            if not fut.cancelled() and fut.exception() is not None:
                raise fut.exception()  # type: ignore[misc]

    def _fetch(self, job: _Job, n: int) -> None:
        missing = [k for k in range(n) if k not in job.found]
        n_requests = 1 if self.backend.n_supported else len(missing)  # unknown: assume the worst
        reservation = self.meter.reserve(
            self.model, job.messages, len(missing), n_requests, self.config.max_tokens
        )
        seed = self.config.seed
        if seed is not None:  # answers 0..k-1 are cached: do not re-draw answer 0's sample for answer k
            seed += missing[0]
        try:
            result: BackendResult = self.backend.complete(job.messages, len(missing), tag=job.tag, seed=seed)
        finally:
            self.meter.release(reservation)
        # Bill the prompt tokens over the new answers so that summing Answers gives the usage.
        share, rest = divmod(result.prompt_tokens, max(1, len(missing)))
        for j, (k, completion) in enumerate(zip(missing, result.completions, strict=True)):
            job.prompt_tokens[k] = share + (rest if j == 0 else 0)
            if self.cache is not None:
                completion = self.cache.put(job.keys[k], k, completion, self.model)
            job.fresh[k] = completion

    def _finish(self, job: _Job, n: int) -> list[Answer]:
        out = []
        rec_seq = self.recorder.allocate(1)[0] if self.recorder is not None else 0
        for k in range(n):
            cached = k in job.found
            c = job.found[k] if cached else job.fresh[k]
            model = c.model or self.model
            answer = Answer(
                text=c.text,
                model=model,
                index=k,
                prompt_tokens=0 if cached else job.prompt_tokens[k],
                completion_tokens=0 if cached else c.completion_tokens,
                cached=cached,
                finish_reason=c.finish_reason,
                prompt_file=job.prompt_file,
            )
            meta = {
                "model": model,
                "prompt_sha256": prompt_sha256(job.messages),
                "finish_reason": c.finish_reason,
                "cached": cached,
                "prompt_tokens": answer.prompt_tokens,
                "completion_tokens": answer.completion_tokens,
            }
            if self.transcript is not None:
                if job.prompt_file:
                    meta["prompt_file"] = str(Path(job.prompt_file).relative_to(self.transcript.root))
                answer.response_file = self.transcript.write_answer(job.seq, job.tag, k, c.text, meta)
            if self.recorder is not None:
                meta.pop("prompt_file", None)
                self.recorder.write_answer(rec_seq, job.tag, k, c.text, meta)
            out.append(answer)
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)  # never block on a hung request
            self._pool = None
        if self.cache is not None:
            self.cache.close()
        close = getattr(self.backend, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
