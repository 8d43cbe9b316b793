"""Score policies on samples: run them in the sandbox pool, score outputs in the trusted parent, cache.

The cache key is (policy source hash, sample key, scorer version): a policy seen before (a resumed
run, a validation pass, a duplicate answer from the LLM) is never run again on the same sample.
The cache lives in memory and, given ``cache_path``, in a SQLite file that a resumed run reuses.
"""

from __future__ import annotations

import ast
import hashlib
import logging
import sqlite3
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from langprop.sandbox import CallResult, SandboxError, SandboxPool
from langprop.sandbox.wire import ProtocolError, dumps, loads_plain, to_plain

__all__ = ["EvalCache", "Evaluation", "Evaluator", "Sample", "Scorer", "infer_function_name"]

log = logging.getLogger(__name__)

CacheKey = tuple[str, str, str]  # (policy source hash, sample key, scorer version)


@dataclass(frozen=True)
class Sample:
    """One input: ``key`` is its stable identity for the cache; ``inputs`` are the policy's kwargs
    (or the harness's inputs); ``expected`` is the label the scorer compares with."""

    key: str
    inputs: dict[str, Any]
    expected: Any = None


@dataclass
class Evaluation:
    sample_key: str
    call: CallResult
    score: float
    feedback: str = ""  # the scorer's explanation, shown in update prompts
    cached: bool = field(default=False, compare=False)


class Scorer(Protocol):
    """Runs in the trusted parent on sanitized output; called for ``ok`` calls only (failures get
    ``exception_score``). Bump ``version`` whenever scores change, so cached scores are not reused."""

    version: str
    exception_score: float

    def __call__(self, sample: Sample, call: CallResult) -> tuple[float, str]: ...


def infer_function_name(source: str) -> str:
    """The policy's entry point when none is configured: the last top-level function it defines."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return "<unparsable>"  # the sandbox reports the SyntaxError as the call's failure
    names = [n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    return names[-1] if names else "<undefined>"


class EvalCache:
    """In-memory LRU in front of an optional SQLite table; values are stored as plain data only."""

    def __init__(self, path: str | Path | None = None, max_memory_entries: int = 200_000) -> None:
        self.path = Path(path) if path is not None else None
        self.max_memory_entries = max_memory_entries
        self._memory: OrderedDict[CacheKey, Evaluation] = OrderedDict()
        self._db: sqlite3.Connection | None = None
        if self.path is not None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path, check_same_thread=False)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS evaluations (policy_hash TEXT, sample_key TEXT, scorer_version TEXT,"
                    " payload BLOB, PRIMARY KEY (policy_hash, sample_key, scorer_version))"
                )
                self._db.commit()
            except sqlite3.Error as exc:
                raise SandboxError(f"evaluation cache {self.path}: cannot open ({exc})") from None

    def get(self, key: CacheKey) -> Evaluation | None:
        hit = self._memory.get(key)
        if hit is not None:
            self._memory.move_to_end(key)
            return hit
        if self._db is None:
            return None
        row = self._db.execute(
            "SELECT payload FROM evaluations WHERE policy_hash=? AND sample_key=? AND scorer_version=?", key
        ).fetchone()
        if row is None:
            return None
        try:
            evaluation = _decode(key[1], row[0])
        except (ProtocolError, ValueError, TypeError):
            log.warning("evaluation cache %s: ignoring an unreadable entry for %s", self.path, key[:2])
            return None
        self._remember(key, evaluation)
        return evaluation

    def get_many(self, policy_hash: str, version: str, sample_keys: list[str]) -> dict[str, Evaluation]:
        """Hits among ``sample_keys`` for one policy: memory first, then one query for the rest."""
        found: dict[str, Evaluation] = {}
        missing: list[str] = []
        for key in sample_keys:
            hit = self._memory.get((policy_hash, key, version))
            if hit is not None:
                self._memory.move_to_end((policy_hash, key, version))
                found[key] = hit
            else:
                missing.append(key)
        if self._db is None or not missing:
            return found
        wanted = set(missing)
        rows = self._db.execute(
            "SELECT sample_key, payload FROM evaluations WHERE policy_hash=? AND scorer_version=?", (policy_hash, version)
        )
        for sample_key, payload in rows:
            if sample_key in wanted:
                try:
                    evaluation = _decode(sample_key, payload)
                except (ProtocolError, ValueError, TypeError):
                    log.warning("evaluation cache %s: ignoring an unreadable entry for %s", self.path, sample_key)
                    continue
                self._remember((policy_hash, sample_key, version), evaluation)
                found[sample_key] = evaluation
        return found

    def put_many(self, items: list[tuple[CacheKey, Evaluation]]) -> None:
        for key, evaluation in items:
            self._remember(key, evaluation)
        if self._db is not None and items:
            rows = [(*key, _encode(e)) for key, e in items]
            with self._db:
                self._db.executemany("INSERT OR REPLACE INTO evaluations VALUES (?, ?, ?, ?)", rows)

    def _remember(self, key: CacheKey, evaluation: Evaluation) -> None:
        self._memory[key] = evaluation
        self._memory.move_to_end(key)
        while len(self._memory) > self.max_memory_entries:
            self._memory.popitem(last=False)

    def __len__(self) -> int:
        if self._db is not None:
            return int(self._db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0])
        return len(self._memory)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _encode(e: Evaluation) -> bytes:
    c = e.call
    return dumps(to_plain((c.status, c.output, c.error_type, c.error_message, c.traceback, c.stdout,
                           c.duration_s, float(e.score), e.feedback)))


def _decode(sample_key: str, payload: bytes) -> Evaluation:
    status, output, etype, emsg, tb, stdout, duration, score, feedback = loads_plain(payload)
    if status not in ("ok", "exception", "timeout", "crash"):
        raise ValueError(f"bad status {status!r}")
    call = CallResult(status, output, etype, emsg, tb, stdout, float(duration))
    return Evaluation(sample_key, call, float(score), str(feedback), cached=True)


class Evaluator:
    """``evaluate(policies, samples)`` → {policy.id: [Evaluation per sample, in order]}.

    ``function_name`` is the policy's entry point (``PolicySpec.name``); when omitted it is inferred
    per policy (the last top-level function).
    """

    def __init__(self, scorer: Scorer, pool: SandboxPool, cache_path: str | Path | None = None,
                 function_name: str | None = None, max_memory_entries: int = 200_000) -> None:
        self.scorer, self.pool, self.function_name = scorer, pool, function_name
        self.cache = EvalCache(cache_path, max_memory_entries)
        self._stats: dict[str, float] = dict.fromkeys(
            ("evaluations", "calls", "cache_hits", "ok", "exception", "timeout", "crash", "sandbox_s", "score_s"), 0
        )

    @property
    def stats(self) -> dict[str, float]:
        return dict(self._stats)

    def close(self) -> None:
        self.cache.close()

    def evaluate(self, policies: list[Any], samples: list[Sample]) -> dict[str, list[Evaluation]]:
        version = str(self.scorer.version)
        out: dict[str, list[Evaluation | None]] = {p.id: [None] * len(samples) for p in policies}
        # Work to do, deduplicated: identical sources (same hash) run once per sample.
        todo: dict[str, tuple[str, list[int]]] = {}  # source hash → (source, sample indices)
        queued: set[tuple[str, int]] = set()
        keys = [sample.key for sample in samples]
        for policy in policies:
            digest = _source_hash(policy)
            hits = self.cache.get_many(digest, version, keys)
            for i, sample in enumerate(samples):
                hit = hits.get(sample.key)
                if hit is not None:
                    out[policy.id][i] = hit
                    self._stats["cache_hits"] += 1
                elif (digest, i) not in queued:
                    queued.add((digest, i))
                    todo.setdefault(digest, (policy.source, []))[1].append(i)
        self._stats["evaluations"] += len(policies) * len(samples)
        fresh = self._run(todo, samples, version)
        for policy in policies:
            digest = _source_hash(policy)
            row = out[policy.id]
            for i, sample in enumerate(samples):
                if row[i] is None:
                    row[i] = fresh[(digest, sample.key, version)]
        return out  # type: ignore[return-value]

    def _run(self, todo: dict[str, tuple[str, list[int]]], samples: list[Sample],
             version: str) -> dict[CacheKey, Evaluation]:
        if not todo:
            return {}
        order = list(todo.items())
        jobs = [(source, self.function_name or infer_function_name(source), [samples[i].inputs for i in idx])
                for _, (source, idx) in order]
        t0 = time.perf_counter()
        results = self.pool.run(jobs)
        t1 = time.perf_counter()
        fresh: dict[CacheKey, Evaluation] = {}
        to_store: list[tuple[CacheKey, Evaluation]] = []
        for (digest, (_, idx)), row in zip(order, results, strict=True):
            for i, call in zip(idx, row, strict=True):
                key = (digest, samples[i].key, version)
                evaluation = self._score(samples[i], call)
                fresh[key] = evaluation
                self._stats[call.status] += 1
                if call.error_type != "BatchDeadline":  # not the policy's fault; try again next time
                    to_store.append((key, evaluation))
        self.cache.put_many(to_store)
        self._stats["calls"] += sum(len(r) for r in results)
        self._stats["sandbox_s"] += t1 - t0
        self._stats["score_s"] += time.perf_counter() - t1
        return fresh

    def _score(self, sample: Sample, call: CallResult) -> Evaluation:
        penalty = float(self.scorer.exception_score)
        if call.status != "ok":
            return Evaluation(sample.key, call, penalty, _failure_feedback(call))
        try:
            score, feedback = self.scorer(sample, call)
            return Evaluation(sample.key, call, float(score), str(feedback))
        except Exception as exc:  # the output broke the scorer (wrong type, NaN...): the policy's failure
            log.debug("scorer rejected the output for %s", sample.key, exc_info=True)
            return Evaluation(sample.key, call, penalty, f"the output could not be scored: {type(exc).__name__}: {exc}")


def _failure_feedback(call: CallResult) -> str:
    reason = {"exception": "the policy raised an exception", "timeout": "the call timed out",
              "crash": "the policy process crashed"}[call.status]
    text = f"{reason}: {call.error_type}: {call.error_message}" if call.error_type else f"{reason}: {call.error_message}"
    if call.status == "exception" and call.traceback:
        text += "\n" + call.traceback.rstrip()
    return text


def _source_hash(policy: Any) -> str:
    digest = getattr(policy, "source_hash", None)
    return digest if isinstance(digest, str) else hashlib.sha256(policy.source.encode()).hexdigest()
