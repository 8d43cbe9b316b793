"""``SandboxPool``: policies × samples spread over worker processes, with timeouts that really kill."""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
import os
import threading
import time
import weakref
from collections import deque
from typing import Any

from langprop.sandbox.confine import set_parent_undumpable
from langprop.sandbox.types import CallResult, SandboxError, SandboxLimits
from langprop.sandbox.wire import dumps
from langprop.sandbox.worker import DEFAULT_PRELOAD, Worker, drive, settle

log = logging.getLogger(__name__)

_MAX_ATTEMPTS = 4

Job = tuple[str, str, list[dict[str, Any]]]  # (source, function_name, kwargs per call)


def encode_inputs(args: tuple[Any, ...], kwargs: dict[str, Any], where: str) -> bytes:
    """Pickle one call's inputs in the trusted parent (copied per call by unpickling in the worker)."""
    try:
        return dumps((tuple(args), dict(kwargs)))
    except Exception as exc:
        raise SandboxError(f"{where}: inputs cannot be sent to a worker ({type(exc).__name__}: {exc})") from None


def start_workers(workers: list[Worker]) -> None:
    for w in workers:
        if w.proc is None:
            w.spawn()
    drive(workers, until=lambda: all(w.ready for w in workers))


class SandboxPool:
    """A pool of sandbox workers (default: one per core). Use as a context manager or call ``close``.

    ``harness`` ("module:function") runs inside the worker as ``harness(policy_fn, inputs)``; without
    it a call is ``policy_fn(**inputs)``. ``preload`` modules are imported once per worker so policy
    processes fork with them loaded (a harness module may add names in ``SANDBOX_PRELOAD``).
    ``protect_parent`` makes this process non-dumpable so workers running as the same user cannot
    read its environment (API keys) through /proc.
    """

    def __init__(self, n_workers: int | None = None, limits: SandboxLimits = SandboxLimits(),
                 harness: str | None = None, preload: tuple[str, ...] = DEFAULT_PRELOAD,
                 protect_parent: bool = True) -> None:
        n = n_workers if n_workers is not None else len(os.sched_getaffinity(0))  # cores this process may use
        if n < 1:
            raise SandboxError(f"SandboxPool.n_workers must be >= 1, got {n_workers!r}")
        if harness is not None and ":" not in harness:
            raise SandboxError(f"SandboxPool.harness must be 'module:function', got {harness!r}")
        self.limits, self.harness = limits, harness
        self.workers = [Worker(limits, harness, tuple(preload)) for _ in range(n)]
        self.protect_parent = protect_parent
        self.stats = {"calls": 0, "sessions": 0, "timeouts": 0, "crashes": 0, "redispatched": 0}
        self._finalizer = weakref.finalize(self, _close_workers, self.workers)
        self._lock = threading.Lock()
        self._ids = itertools.count()

    @property
    def n_workers(self) -> int:
        return len(self.workers)

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._finalizer()

    def start(self) -> None:
        """Start the worker processes now (otherwise the first ``run`` does)."""
        if self.protect_parent:
            set_parent_undumpable()
        start_workers(self.workers)

    def run(self, jobs: list[Job]) -> list[list[CallResult]]:
        """Run every job's calls; results come back in job and sample order."""
        if not self._finalizer.alive:
            raise SandboxError("SandboxPool is closed")
        with self._lock:  # one batch at a time: workers are not shared between concurrent runs
            return self._run(jobs)

    def _run(self, jobs: list[Job]) -> list[list[CallResult]]:
        self.start()
        settle(*self.workers)  # nothing left over from an interrupted run
        t0 = time.monotonic()
        deadline = t0 + self.limits.batch_deadline_s if self.limits.batch_deadline_s else None
        results: list[list[CallResult | None]] = [[None] * len(job[2]) for job in jobs]
        # Each distinct inputs dict is encoded once and sent once per worker, however many policies use it.
        # Workers keep samples by content digest, so a batch evaluated again (children after parents)
        # is not shipped again.
        digests: dict[int, str] = {}
        blobs: dict[str, bytes] = {}
        refs: list[list[str]] = []
        for j, job in enumerate(jobs):
            row = []
            for i, kw in enumerate(job[2]):
                digest = digests.get(id(kw))
                if digest is None:
                    blob = encode_inputs((), kw, f"job {j} sample {i}")
                    # 128 bits of SHA-256 (hardware-accelerated here: ~2 us per 3 KB sample, blake2b ~3.3)
                    digests[id(kw)] = digest = hashlib.sha256(blob).hexdigest()[:32]
                    blobs[digest] = blob
                row.append(digest)
            refs.append(row)
        # Too much to keep in a worker (it would eat into every policy's memory_mb): send inline instead.
        inline = sum(len(b) for b in blobs.values()) > self.workers[0].sample_store_bytes
        total = sum(len(r) for r in refs)
        chunk = max(1, math.ceil(total / (2 * self.n_workers)))
        queue: deque[tuple[int, list[int]]] = deque(
            (j, list(range(len(r)))[k : k + chunk]) for j, r in enumerate(refs) for k in range(0, len(r), chunk)
        )
        where: dict[int, tuple[int, int]] = {}  # call id (unique for the pool's lifetime) → (job, sample)
        attempts: dict[tuple[int, int], int] = {}

        def collect() -> None:
            for w in self.workers:
                for cid, res in w.completed:
                    j, i = where.pop(cid)
                    results[j][i] = res
                    if res.status in ("timeout", "crash"):
                        self.stats["timeouts" if res.status == "timeout" else "crashes"] += 1
                w.completed.clear()
                if w.unfinished:  # re-dispatch first, grouped per job, order kept
                    by_job: dict[int, list[int]] = {}
                    for cid in w.unfinished:
                        j, i = where.pop(cid)
                        attempts[j, i] = attempts.get((j, i), 0) + 1
                        if attempts[j, i] > _MAX_ATTEMPTS:  # whatever keeps ending its process: stop trying
                            results[j][i] = CallResult("crash", error_type="WorkerCrash", error_message=(
                                f"the policy process ended {_MAX_ATTEMPTS} times before this call could run"))
                            continue
                        by_job.setdefault(j, []).append(i)
                    for j, idx in reversed(by_job.items()):
                        queue.appendleft((j, idx))
                    self.stats["redispatched"] += len(w.unfinished)
                    w.unfinished.clear()

        while True:
            collect()
            for w in self.workers:
                if w.idle and queue:
                    j, idx = queue.popleft()
                    calls: list[tuple[int, bytes | str]] = []
                    for i in idx:
                        cid = next(self._ids)
                        where[cid] = (j, i)
                        calls.append((cid, blobs[refs[j][i]] if inline else refs[j][i]))
                    if not inline:
                        w.send_samples([(refs[j][i], blobs[refs[j][i]]) for i in idx])
                    w.open_session(jobs[j][0], jobs[j][1], calls, end=True)
                    self.stats["sessions"] += 1
            if not queue and all(w.session is None for w in self.workers):
                break
            # Results pile up in each worker's `completed`; come back only when there is work to hand out.
            ok = drive(self.workers, deadline=deadline, until=lambda: all(w.session is None for w in self.workers)
                       or any(w.unfinished or (w.idle and queue) for w in self.workers))
            if not ok:
                self._expire(deadline)
                collect()
                break
        collect()
        self.stats["calls"] += total
        message = f"the batch deadline of {self.limits.batch_deadline_s}s passed before this call ran"
        return [[r if r is not None else CallResult("timeout", error_type="BatchDeadline", error_message=message)
                 for r in row] for row in results]

    def _expire(self, deadline: float | None) -> None:
        """Batch deadline: kill every running session and wait for the zygotes to report them."""
        log.warning("sandbox batch deadline of %ss exceeded; killing running calls", self.limits.batch_deadline_s)
        message = f"the batch deadline of {self.limits.batch_deadline_s}s passed; the call was killed"
        for w in self.workers:
            w.kill_session("timeout", message, "BatchDeadline")
        drive(self.workers, until=lambda: all(w.session is None for w in self.workers),
              deadline=time.monotonic() + 10.0)


def _close_workers(workers: list[Worker]) -> None:
    for w in workers:
        try:
            w.close()
        except Exception:  # pragma: no cover - best effort at interpreter exit
            log.debug("closing a sandbox worker failed", exc_info=True)
