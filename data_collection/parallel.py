"""Route jobs sharded over workers: inline, worker processes on this machine, or Ray actors.

Every backend runs the same ``CollectorSession`` (one world per process: libsumo allows one
simulation per process), so a route's file depends only on (route, seed, config), never on which
worker ran it or in which order. The main process hands one job at a time to each idle worker
(preferring a job of the town the worker's world already runs) and receives ``(kind, index,
payload)`` events: ``start``, ``progress`` ({rc, frames}) and ``done`` (a ``RouteSummary``).

Failure isolation: a worker that dies (segfault in a world, OOM kill) fails only the route it was
running ("Failed - Simulation crashed", its ``.partial`` deleted, redone on the next run) and is
replaced. Process workers talk over one pipe each (a worker killed mid-message can't corrupt a
queue shared with the others) and are killed with the main process (``PR_SET_PDEATHSIG``), so a
``kill -9`` of the collector leaves no orphan writing files. Ctrl-C: workers are told to stop
(SIGTERM -> their writer deletes its ``.partial``), then killed if they linger.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from data_collection.episode import (
    STOP_REQUESTED,
    CollectorSession,
    RouteSummary,
    WorkerSettings,
    episode_path,
    partial_path,
)
from data_collection.episode import failed_record as _failed_record

log = logging.getLogger(__name__)

BACKENDS = ("process", "ray", "inline")
STOP_GRACE_S = 10.0  # seconds a stopping worker gets to abort its writer before it is killed
MAX_STARTUP_FAILURES = 3  # workers dying before their first event, in a row: the run stops

OnEvent = Callable[[str, Any, Any], None]  # (kind, job, payload)


class CollectBackendError(RuntimeError):
    """A backend that cannot run at all (Ray missing, workers that die on start)."""


def run_jobs(jobs: Sequence[Any], settings: WorkerSettings, on_event: OnEvent, *, workers: int = 1,
             backend: str = "process", ray_address: str | None = None) -> None:
    """Run every job; ``on_event`` gets each job's ``start``/``progress`` events and exactly one
    ``done`` with its ``RouteSummary``. Raises ``KeyboardInterrupt`` after stopping the workers."""
    if not jobs:
        return
    if backend == "inline":
        _run_inline(jobs, settings, on_event)
    elif backend == "process":
        _ProcessPool(settings, max(1, min(int(workers), len(jobs))), on_event).run(jobs)
    elif backend == "ray":
        _run_ray(jobs, settings, max(1, min(int(workers), len(jobs))), on_event, ray_address)
    else:
        raise CollectBackendError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")


def crashed_summary(job: Any, settings: WorkerSettings, why: str) -> RouteSummary:
    """The summary of a route whose worker died; its ``.partial`` is deleted (redone on resume)."""
    from leaderboard_eval.runner import STATUS_SIM_CRASHED

    with contextlib.suppress(OSError):
        partial_path(episode_path(settings.out_dir, job.route.id, job.repetition)).unlink()
    record = _failed_record(job, settings.version, STATUS_SIM_CRASHED)
    log.error("route %s: %s", job.name, why)
    return RouteSummary(index=job.index, route_id=job.route.id, repetition=job.repetition,
                        record_id=record.route_id, status=record.status, driving_score=record.driving_score,
                        route_completion=record.route_completion, infraction_penalty=record.infraction_penalty,
                        infractions=record.num_infractions, frames=0, path=None, record=record.to_json(),
                        error=why)


def _next_job(pending: deque, town: str | None) -> Any:
    """The first pending job of ``town`` (its world is reused), else the first pending job."""
    for i, job in enumerate(pending):
        if job.route.town == town:
            del pending[i]
            return job
    return pending.popleft()


# --------------------------------------------------------------------------- inline
def _run_inline(jobs: Sequence[Any], settings: WorkerSettings, on_event: OnEvent) -> None:
    session = CollectorSession(settings)
    try:
        for job in jobs:
            summary = session.run(job, lambda kind, payload, _job=job: on_event(kind, _job, payload))
            on_event("done", job, summary)
    finally:
        session.close()


# --------------------------------------------------------------------------- worker processes
def _die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux); exit if it already has."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the closed pipe still ends the worker
        pass
    if os.getppid() != parent_pid:
        os._exit(1)


_IN_ROUTE = threading.Event()  # set while the worker drives a route


def _request_stop(signum: int, frame: Any) -> None:
    """SIGTERM: between routes (blocked in ``recv``) stop now; during a route let the recorder stop at
    its next tick, so the writer's ``.partial`` is deleted by the normal abort path."""
    STOP_REQUESTED.set()
    if not _IN_ROUTE.is_set():
        raise KeyboardInterrupt()


def worker_main(conn: Any, settings: WorkerSettings, parent_pid: int) -> None:
    """A worker process: receive jobs (None = stop) on ``conn``, send back events, one world."""
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides what Ctrl-C stops
    signal.signal(signal.SIGTERM, _request_stop)  # ... and sends SIGTERM: abort the writer, exit
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s[worker]: %(message)s")
    session = CollectorSession(settings)
    try:
        while True:
            try:
                job = conn.recv()
            except (EOFError, OSError):  # the main process is gone
                break
            if job is None:
                break
            _IN_ROUTE.set()
            try:
                summary = session.run(job, lambda kind, payload, _i=job.index: conn.send((kind, _i, payload)))
            finally:
                _IN_ROUTE.clear()
            conn.send(("done", job.index, summary))  # a route that finished counts, stop or not
            if STOP_REQUESTED.is_set():
                break
    except KeyboardInterrupt:
        pass
    finally:
        session.close()


@dataclass
class _Worker:
    process: Any
    conn: Any
    job: Any = None
    town: str | None = None
    heard: bool = False  # sent at least one event (it started properly)
    jobs: list = field(default_factory=list)


class _ProcessPool:
    def __init__(self, settings: WorkerSettings, size: int, on_event: OnEvent) -> None:
        import multiprocessing

        self.ctx = multiprocessing.get_context("spawn")  # libsumo/carla state must not be forked
        self.settings = settings
        self.size = size
        self.on_event = on_event
        self.workers: list[_Worker] = []
        self.startup_failures = 0

    def _spawn(self) -> _Worker:
        parent, child = self.ctx.Pipe(duplex=True)
        process = self.ctx.Process(target=worker_main, args=(child, self.settings, os.getpid()),
                                   name=f"collect-worker-{len(self.workers)}", daemon=True)
        process.start()
        child.close()
        worker = _Worker(process, parent)
        self.workers.append(worker)
        return worker

    def _assign(self, worker: _Worker, pending: deque) -> None:
        if not pending:
            worker.job = None
            with contextlib.suppress(OSError):
                worker.conn.send(None)
            return
        worker.job = _next_job(pending, worker.town)
        worker.town = worker.job.route.town
        with contextlib.suppress(OSError):  # died before it could take the job: its sentinel tells
            worker.conn.send(worker.job)

    def run(self, jobs: Sequence[Any]) -> None:
        from multiprocessing.connection import wait

        pending = deque(jobs)
        with _deferred_sigint() as interrupted:
            self._run(pending, interrupted, wait)

    def _run(self, pending: deque, interrupted: Callable[[], bool], wait: Callable[..., list]) -> None:
        try:
            for _ in range(self.size):
                self._assign(self._spawn(), pending)
            while any(w.job is not None for w in self.workers):
                busy = [w for w in self.workers if w.job is not None]
                ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=0.2))
                if interrupted():
                    raise KeyboardInterrupt()
                for worker in busy:
                    if worker.conn in ready:
                        self._drain(worker, pending)
                    if worker.process.sentinel in ready or not worker.process.is_alive():
                        self._drain(worker, pending)  # what it sent before it exited
                        if worker.job is not None:
                            self._lost(worker, pending)
        except BaseException:
            self._stop_all()
            raise
        self._stop_all()

    def _drain(self, worker: _Worker, pending: deque) -> None:
        try:
            while worker.job is not None and worker.conn.poll():
                kind, index, payload = worker.conn.recv()
                worker.heard = True
                if index != worker.job.index:
                    continue
                self.on_event(kind, worker.job, payload)
                if kind == "done":
                    self._assign(worker, pending)
        except (EOFError, OSError, ValueError, TypeError) as exc:  # a half-sent message: the worker died
            log.debug("worker %s: pipe closed (%r)", worker.process.name, exc)

    def _lost(self, worker: _Worker, pending: deque) -> None:
        worker.process.join(timeout=5)
        code = worker.process.exitcode
        how = f"signal {-code} ({signal.Signals(-code).name})" if code is not None and code < 0 else f"exit code {code}"
        job, worker.job = worker.job, None
        self.startup_failures = 0 if worker.heard else self.startup_failures + 1
        self.on_event("done", job, crashed_summary(job, self.settings, f"the worker process died ({how})"))
        with contextlib.suppress(OSError):
            worker.conn.close()
        if self.startup_failures >= MAX_STARTUP_FAILURES:
            raise CollectBackendError(f"collection workers die as they start ({how}, {self.startup_failures} "
                                      "times in a row); run with backend=inline to see why")
        if pending:
            self._assign(self._spawn(), pending)

    def _stop_all(self) -> None:
        alive = [w for w in self.workers if w.process.is_alive()]
        for w in alive:
            if w.job is None:
                with contextlib.suppress(OSError):
                    w.conn.send(None)
            else:
                with contextlib.suppress(OSError):
                    os.kill(w.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for w in alive:
            w.process.join(timeout=max(0.1, deadline - time.monotonic()))
            if w.process.is_alive():
                log.warning("worker %s did not stop; killing it", w.process.name)
                w.process.kill()
                w.process.join(timeout=5)
        for w in self.workers:
            if w.job is not None:  # a route that finished while the workers stopped is still recorded
                self._drain(w, deque())
            with contextlib.suppress(OSError):
                w.conn.close()


@contextlib.contextmanager
def _deferred_sigint() -> Iterator[Callable[[], bool]]:
    """Ctrl-C sets a flag that the pool's loop turns into ``KeyboardInterrupt`` between waits.

    Python raises ``KeyboardInterrupt`` wherever the main thread is, including inside a weakref
    callback, where it is printed as "Exception ignored" and lost. A second Ctrl-C raises at once.
    """
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    requested = [False]

    def on_sigint(signum: int, frame: Any) -> None:
        if requested[0]:
            raise KeyboardInterrupt()
        requested[0] = True

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield lambda: requested[0]
    finally:
        signal.signal(signal.SIGINT, previous)


# --------------------------------------------------------------------------- Ray
class RayCollector:
    """A Ray actor: its own process, its own world; progress events go through a Ray queue."""

    def __init__(self, settings: WorkerSettings, queue: Any) -> None:
        logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s[ray]: %(message)s")
        self.session = CollectorSession(settings)
        self.queue = queue

    def run(self, job: Any) -> RouteSummary:
        def report(kind: str, payload: dict) -> None:
            self.queue.put_nowait((kind, job.index, payload))

        return self.session.run(job, report)

    def close(self) -> None:
        self.session.close()


def _ray_worker_env() -> dict[str, str]:
    """The town cache location and a path on which this checkout imports (Ray workers don't share
    the driver's sys.path)."""
    from pathlib import Path

    root = str(Path(__file__).resolve().parent.parent)
    paths = [root, *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != root)]
    env = {k: v for k, v in os.environ.items() if k.startswith("LANGPROP_")}
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def _run_ray(jobs: Sequence[Any], settings: WorkerSettings, size: int, on_event: OnEvent,
             address: str | None) -> None:
    try:
        import ray
        from ray.util.queue import Empty, Queue
    except ImportError:
        raise CollectBackendError("backend=ray needs Ray: pip install 'langprop-drive[ray]'") from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, num_cpus=None if address else size, include_dashboard=False,
                 log_to_driver=True, logging_level=logging.WARNING)
    env = _ray_worker_env()
    actor_class = ray.remote(num_cpus=1, max_restarts=0)(RayCollector)
    queue = Queue(actor_options={"num_cpus": 0})
    pending = deque(jobs)
    running: dict[Any, tuple[Any, Any]] = {}  # ObjectRef -> (actor, job)
    towns: dict[Any, str] = {}

    def new_actor() -> Any:
        return actor_class.options(runtime_env={"env_vars": env}).remote(settings, queue)

    def submit(actor: Any) -> None:
        job = _next_job(pending, towns.get(actor))
        towns[actor] = job.route.town
        running[actor.run.remote(job)] = (actor, job)

    try:
        for _ in range(size):
            if pending:
                submit(new_actor())
        while running:
            done, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
            while True:  # progress first, so a route's last progress never lands after its 'done'
                try:
                    kind, index, payload = queue.get_nowait()
                except Empty:
                    break
                job = next((j for _, j in running.values() if j.index == index), None)
                if job is not None:
                    on_event(kind, job, payload)
            for ref in done:
                actor, job = running.pop(ref)
                try:
                    summary = ray.get(ref)
                except ray.exceptions.RayActorError as exc:  # the actor's process died
                    summary = crashed_summary(job, settings, f"the Ray actor died ({type(exc).__name__})")
                    ray.kill(actor)
                    actor = new_actor()
                except ray.exceptions.RayError as exc:
                    summary = crashed_summary(job, settings, f"Ray task failed: {exc}")
                on_event("done", job, summary)
                if pending:
                    submit(actor)
                else:
                    with contextlib.suppress(Exception):
                        ray.get(actor.close.remote(), timeout=30)
                    ray.kill(actor)
    finally:
        for actor, _job in running.values():  # interrupted: their .partial files are redone later
            ray.kill(actor)
        with contextlib.suppress(Exception):
            ray.kill(queue.actor)
        if started:
            ray.shutdown()
