"""One route driven and recorded: the worker side of data collection.

A ``CollectorSession`` lives in one worker process (or Ray actor, or the main process when running
inline) and owns that process's one world (libsumo allows one simulation per process); it is reused
across the routes of one town. ``run(job)`` drives the route through the leaderboard runner's own
episode loop (``leaderboard_eval.runner.run_episode``) with a ``FrameRecorder`` as its ``on_step``
hook, and writes ``<out>/<route_id>_rep<r>.h5`` through the storage engineer's ``EpisodeWriter``
(``.partial`` while it is written, renamed at close).

What a route's file holds depends only on (route, seed, recording config): the world is reset with
``seed + repetition`` for every route, and drivers and labellers are made fresh per route.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data_collection.schema import PARTIAL_SUFFIX
from driving.actions import ActionController, ActionDriver
from driving.types import Route, VehicleControl

log = logging.getLogger(__name__)

# Set by a worker's SIGTERM handler; the recorder turns it into KeyboardInterrupt at the next tick
# (a handler that raised would do so anywhere, e.g. inside a weakref callback, where it is lost).
STOP_REQUESTED = threading.Event()
PROGRESS_EVERY = 20  # ticks between progress reports (one simulated second)
LABELLER_IS_DRIVER = "driver"  # labeller spec meaning "the driver's own actions are the labels"
RERUN_STATUSES = ("Failed - Simulation crashed",)  # no file is kept: the route is redone on resume

Report = Callable[[str, dict[str, Any]], None]


# --------------------------------------------------------------------------- names and provenance
def episode_name(route_id: str, repetition: int) -> str:
    """``<route_id>_rep<r>`` with characters a file name can't safely hold replaced by '_'."""
    return f"{re.sub(r'[^A-Za-z0-9_.-]', '_', route_id)}_rep{repetition}"


def episode_path(out_dir: Path, route_id: str, repetition: int) -> Path:
    return out_dir / f"{episode_name(route_id, repetition)}.h5"


def partial_path(final: Path) -> Path:
    return final.with_name(final.name + PARTIAL_SUFFIX)


def route_digest(route: Route) -> str:
    """A short hash of the route's geometry: a resumed run must not mistake another route for it."""
    points = [(round(w.x, 3), round(w.y, 3)) for w in route.dense] or [(k.x, k.y) for k in route.keypoints]
    return hashlib.sha256(json.dumps([route.town, points]).encode()).hexdigest()[:16]


def target_name(spec: Mapping[str, Any] | str | None) -> str:
    """The class path a driver spec instantiates ('none' for no labeller)."""
    if spec is None:
        return "none"
    if isinstance(spec, str):
        return spec
    return str(spec.get("_target_", "?"))


# --------------------------------------------------------------------------- settings
@dataclass
class WorkerSettings:
    """Everything a worker needs, picklable (sent once to each worker process / Ray actor)."""

    out_dir: Path
    world: Any  # EmbeddedWorldConfig
    driver: dict[str, Any]  # Hydra spec with _target_
    labeller: dict[str, Any] | str | None  # spec, LABELLER_IS_DRIVER, or None (no labels)
    record_every: int = 1
    version: str = "2.0"
    seed: int = 0
    wall_time_limit_s: float | None = 900.0
    blocked_time_s: float | None = None
    recording_config: dict[str, Any] = field(default_factory=dict)  # stored as the 'config' attribute
    log_level: int = logging.WARNING


@dataclass
class RouteSummary:
    """What became of one (route, repetition): its score, its file (None when none was kept)."""

    index: int
    route_id: str  # the route's own id
    repetition: int
    record_id: str  # 'RouteScenario_<id>_rep<r>'
    status: str
    driving_score: float
    route_completion: float
    infraction_penalty: float
    infractions: int
    frames: int
    path: str | None
    record: dict[str, Any]  # the leaderboard record (RouteRecord.to_json())
    wall_s: float = 0.0
    skipped: bool = False  # recorded by an earlier run
    error: str = ""  # why no file was kept (worker crash, write failure, ...)


def make_driver(spec: Mapping[str, Any]) -> Any:
    """Instantiate a driver from its Hydra spec (``_target_`` + keyword arguments)."""
    from hydra.utils import instantiate

    return instantiate(dict(spec))


# --------------------------------------------------------------------------- the on_step hook
class FrameRecorder:
    """``run_episode``'s ``on_step`` hook: label the scene, append every ``record_every``-th frame.

    The labeller acts on the scene the driving policy saw and drives nothing: its control comes from
    its own ``ActionController`` (fed every tick, so its PID state is the one it would have had
    driving), never from the driver's. With ``labeller_is_driver`` the driver's own action and
    control are the labels (the expert driving: a second expert would compute the same).
    """

    def __init__(self, writer: Any, record_every: int, labeller: Any = None, labeller_is_driver: bool = False,
                 dt: float = 0.05, report: Report | None = None) -> None:
        self.writer = writer
        self.record_every = max(1, int(record_every))
        self.labeller = labeller
        self.labeller_is_driver = labeller_is_driver
        self.label_controller = ActionController(dt=dt)
        self.report = report
        self.ticks = 0
        self.frames = 0
        self.events: list[Any] = []  # the monitor's events, tick by tick (their frame = world tick)
        self.write_error: BaseException | None = None
        self._rc = 0.0  # route completion of the state the next scene shows

    def use_labeller(self, labeller: Any) -> None:
        """Label with ``labeller`` (already reset for the route) from the next tick on."""
        self.labeller = labeller
        self.label_controller.reset()

    def __call__(self, scene: Any, driver: Any, control: VehicleControl, tick: Any, monitor: Any,
                 new_events: list) -> None:
        from data_collection import FrameRecord

        if STOP_REQUESTED.is_set():  # a stopping worker leaves the route here, at a safe point
            raise KeyboardInterrupt()
        label = label_control = None
        if self.labeller_is_driver:
            label, label_control = getattr(driver, "last_action", None), control
        elif self.labeller is not None:
            label = self.labeller.act(scene)
            label_control = self.label_controller.control(label, scene)
        if self.ticks % self.record_every == 0:
            driver_action = driver.last_action if isinstance(driver, ActionDriver) else None
            try:
                with _alarm_deferred():  # the wall-clock alarm must not cut a frame in half
                    self.writer.append(FrameRecord(scene=scene, route_completion=self._rc, expert=label,
                                                   expert_control=label_control, driver=driver_action,
                                                   driver_control=control))
            except Exception as exc:
                self.write_error = exc  # the file is not kept; the runner ends the route
                raise
            self.frames += 1
        self.events.extend(new_events)
        self._rc = float(monitor.route_completion)
        self.ticks += 1
        if self.report is not None and self.ticks % PROGRESS_EVERY == 0:
            self.report("progress", {"rc": self._rc, "frames": self.frames})


# --------------------------------------------------------------------------- one worker's session
class CollectorSession:
    """One process's world and the routes it records (see the module docstring)."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.world: Any = None
        self.world_town: str | None = None

    def close(self) -> None:
        if self.world is not None:
            from leaderboard_eval.runner import _close_quietly

            _close_quietly(self.world)
            self.world, self.world_town = None, None

    def _world_for(self, town: str) -> Any:
        if self.world is None or self.world_town != town:
            self.close()
            from driving.worlds.embedded import EmbeddedWorld

            self.world = EmbeddedWorld(dataclasses.replace(self.settings.world, town=town))
            self.world_town = town
        return self.world

    def attrs(self, job: Any) -> dict[str, Any]:
        """Provenance (the writer adds package version, git commit, creation time): ``config`` is the
        recording config (stored as JSON under /meta), ``version`` the leaderboard version."""
        s = self.settings
        return {
            "town": job.route.town, "route_id": job.route.id, "repetition": job.repetition,
            "seed": s.seed + job.repetition, "index": job.index, "record_every": s.record_every,
            "config": s.recording_config, "driver": target_name(s.driver),
            "labeller": target_name(s.driver) if s.labeller == LABELLER_IS_DRIVER else target_name(s.labeller),
            "version": s.version, "route_digest": route_digest(job.route),
        }

    def run(self, job: Any, report: Report | None = None) -> RouteSummary:
        """Drive and record ``job``; never raises for a failing route (only ``KeyboardInterrupt``)."""
        from data_collection import EpisodeWriter
        from leaderboard_eval.runner import STATUS_SIM_CRASHED, run_episode

        s = self.settings
        t0 = time.perf_counter()
        final = episode_path(Path(s.out_dir), job.route.id, job.repetition)
        if report is not None:
            report("start", {"name": final.name})
        try:
            world = self._world_for(job.route.town)
        except Exception as exc:  # noqa: BLE001 - a world that can't start fails this route only
            log.error("route %s: the world could not be created: %r", job.name, exc, exc_info=True)
            return self._failed(job, f"Failed - {STATUS_SIM_CRASHED}", f"world: {exc!r}", t0)
        try:
            writer = EpisodeWriter(final, self.attrs(job), overwrite=True)  # replaced only at close
        except Exception as exc:  # noqa: BLE001 - e.g. disk full: fails this route only
            log.error("route %s: cannot write %s: %r", job.name, final, exc)
            record = failed_record(job, s.version, "")
            return _summary_of(job, record, 0, None, time.perf_counter() - t0, f"cannot write {final}: {exc!r}")
        labeller_is_driver = s.labeller == LABELLER_IS_DRIVER
        recorder = FrameRecorder(writer, s.record_every, None, labeller_is_driver, world.dt, report)

        def make() -> Any:  # the runner reports a failure here as "Agent couldn't be set up"
            if s.labeller is not None and not labeller_is_driver:
                labeller = make_driver(s.labeller)
                labeller.reset(job.route)
                recorder.use_labeller(labeller)
            return make_driver(s.driver)

        try:
            record, rebuild = run_episode(world, job, make, s.version, s.seed + job.repetition,
                                          s.wall_time_limit_s, s.blocked_time_s, on_step=recorder)
        except BaseException:
            writer.abort()
            raise
        if rebuild:
            self.close()
        error = ""
        if recorder.write_error is not None:
            error = f"writing {final.name} failed: {recorder.write_error!r}"
        elif record.status in RERUN_STATUSES:
            error = "the world failed; the route is redone on resume"
        elif recorder.frames == 0:
            error = "no frame recorded"
        path: str | None = None
        if error:
            writer.abort()
        else:
            try:
                path = str(writer.close(_all_events(recorder, record), self._summary(record, recorder)))
            except Exception as exc:  # noqa: BLE001 - a failed write fails this route only
                log.error("route %s: closing %s failed: %r", job.name, final.name, exc, exc_info=True)
                writer.abort()
                error = f"writing {final.name} failed: {exc!r}"
        return _summary_of(job, record, recorder.frames, path, time.perf_counter() - t0, error)

    @staticmethod
    def _summary(record: Any, recorder: FrameRecorder) -> dict[str, Any]:
        return {"DS": record.driving_score, "RC": record.route_completion, "IP": record.infraction_penalty,
                "status": record.status, "frames": recorder.frames, "ticks": recorder.ticks,
                "record": record.to_json()}

    def _failed(self, job: Any, status: str, error: str, t0: float) -> RouteSummary:
        record = failed_record(job, self.settings.version, status.removeprefix("Failed - "))
        return _summary_of(job, record, 0, None, time.perf_counter() - t0, error)


@contextlib.contextmanager
def _alarm_deferred() -> Iterator[None]:
    """Hold SIGALRM (the runner's wall-clock limit) until the block is done; it fires right after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _all_events(recorder: FrameRecorder, record: Any) -> list[Any]:
    """The events seen tick by tick, then those the monitor added when it finalized the route."""
    seen = {id(e) for e in recorder.events}
    return recorder.events + sorted((e for e in record.events if id(e) not in seen), key=lambda e: e.frame)


def failed_record(job: Any, version: str, failure: str) -> Any:
    """The leaderboard record of a route that never ran (its world or its worker died)."""
    from driving.scoring import build_route_record

    return build_route_record(job.record_id(version), job.index, [], 0.0, False, job.route.length, 0.0, 0.0,
                              version, failure_message=failure)


def _summary_of(job: Any, record: Any, frames: int, path: str | None, wall_s: float, error: str) -> RouteSummary:
    return RouteSummary(index=job.index, route_id=job.route.id, repetition=job.repetition,
                        record_id=record.route_id, status=record.status, driving_score=record.driving_score,
                        route_completion=record.route_completion,
                        infraction_penalty=record.infraction_penalty, infractions=record.num_infractions,
                        frames=frames, path=path, record=record.to_json(), wall_s=wall_s, error=error)
