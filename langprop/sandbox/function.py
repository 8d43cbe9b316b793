"""``SandboxedFunction``: one policy behind one dedicated worker, callable like a local function."""

from __future__ import annotations

import itertools
import threading
import weakref
from typing import Any

from langprop.sandbox.confine import set_parent_undumpable
from langprop.sandbox.pool import encode_inputs, start_workers
from langprop.sandbox.types import CallResult, PolicyCallError, SandboxError, SandboxLimits
from langprop.sandbox.worker import DEFAULT_PRELOAD, Worker, drive, settle

_MAX_REDISPATCH = 3


class SandboxedFunction:
    """Calls go to a long-lived policy process (compiled once); a timeout or crash kills it and the
    next call runs in a fresh one forked from the same worker. ``__call__`` returns the output or
    raises :class:`PolicyCallError`; ``call`` returns the :class:`CallResult`."""

    def __init__(self, source: str, function_name: str, limits: SandboxLimits = SandboxLimits(),
                 harness: str | None = None, preload: tuple[str, ...] = DEFAULT_PRELOAD,
                 protect_parent: bool = True) -> None:
        self.source, self.function_name, self.limits = source, function_name, limits
        self._worker = Worker(limits, harness, tuple(preload))
        self._ids = itertools.count()
        self._protect_parent = protect_parent
        self._finalizer = weakref.finalize(self, self._worker.close)
        self._lock = threading.Lock()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        result = self.call(*args, **kwargs)
        if result.status != "ok":
            raise PolicyCallError(result)
        return result.output

    def call(self, *args: Any, **kwargs: Any) -> CallResult:
        if not self._finalizer.alive:
            raise SandboxError(f"SandboxedFunction {self.function_name!r} is closed")
        blob = encode_inputs(args, kwargs, f"call to {self.function_name}")
        with self._lock:
            return self._call(blob)

    def _call(self, blob: bytes) -> CallResult:
        w = self._worker
        if w.proc is None:
            if self._protect_parent:
                set_parent_undumpable()
            start_workers([w])
        for _ in range(_MAX_REDISPATCH):
            settle(w)
            if w.session is None:
                drive([w], until=lambda: w.idle)
                w.open_session(self.source, self.function_name)
            cid = next(self._ids)
            w.send_calls([(cid, blob)])
            drive([w], until=lambda cid=cid: cid in w.unfinished or any(c == cid for c, _ in w.completed))
            done = dict(w.completed)
            w.completed.clear()
            w.unfinished.clear()
            if cid in done:
                return done[cid]
        return CallResult("crash", error_type="WorkerCrash",
                          error_message=f"the worker failed {_MAX_REDISPATCH} times before running the call")

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> SandboxedFunction:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
