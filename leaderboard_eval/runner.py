"""The embedded route runner: drive a route set closed loop and score it like the CARLA leaderboard.

Per route (and repetition): ``world.reset`` -> a fresh driver (``driver_factory()``, like the
leaderboard's new agent per route) -> loop ``driver.run_step(scene)`` -> ``world.step`` ->
``RouteMonitor.update(world.tick())`` until the monitor ends the route -> ``finalize`` -> the record
is appended and ``results.json`` is rewritten atomically. Failures end one route, never the run:

- the driver raises (setup or ``run_step``) -> "Failed - Agent couldn't be set up" / "Failed - Agent crashed"
- the world raises -> "Failed - Simulation crashed" (the world is rebuilt for the next route)
- the route exceeds its wall-clock budget -> "Failed - Wall time limit exceeded"
- a stuck ego -> the monitor's leaderboard rule, "Failed - Agent got blocked"

Ctrl-C writes the results so far (entry_status "Crashed", as the leaderboard leaves an unfinished
run) and re-raises; ``resume=True`` then skips every route already recorded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from driving.types import Route, VehicleControl, World

log = logging.getLogger(__name__)

STATUS_SETUP_FAILED = "Failed - Agent couldn't be set up"
STATUS_AGENT_CRASHED = "Failed - Agent crashed"
STATUS_SIM_CRASHED = "Failed - Simulation crashed"
STATUS_WALL_TIME = "Failed - Wall time limit exceeded"
RERUN_ON_RESUME = (STATUS_SIM_CRASHED,)  # the leaderboard re-runs routes the simulator lost


class RunnerError(Exception):
    """A user-facing problem with the run's inputs (routes, subset, town, checkpoint)."""


class _WallTimeExceeded(BaseException):
    """Raised by the wall-clock alarm; a BaseException so a driver's ``except Exception`` can't eat it."""


@dataclass(frozen=True)
class RouteJob:
    """One (route, repetition) in leaderboard order: route 0 rep 0, route 0 rep 1, route 1 rep 0..."""

    index: int
    route: Route
    repetition: int

    @property
    def route_id(self) -> str:
        return f"RouteScenario_{self.route.id}_rep{self.repetition}"


@dataclass
class EpisodeOutcome:
    """What ended a route besides the monitor's own rule (None = the monitor decided)."""

    status: str | None = None
    message: str = ""


# --------------------------------------------------------------------------- route selection
def parse_subset(spec: str) -> list[str]:
    """The leaderboard's ``--routes-subset``: ``"0-4,7"`` -> route ids ['0','1','2','3','4','7']."""
    ids: list[str] = []
    for part in (p.strip() for p in str(spec).split(",")):
        span = re.fullmatch(r"(\d+)\s*-\s*(\d+)", part)
        if span:
            a, b = int(span[1]), int(span[2])
            if a > b:
                raise RunnerError(f"--routes-subset: range {part!r} is empty (start > end)")
            ids.extend(str(i) for i in range(a, b + 1))
        elif part:
            ids.append(part)  # a single id (route ids need not be numbers)
    if not ids:
        raise RunnerError(f"--routes-subset: {spec!r} names no route")
    return ids


def select_routes(routes: Sequence[Route], subset: str | None) -> list[Route]:
    """Routes whose id is in ``subset`` (file order kept); every id asked for must exist."""
    if not subset:
        return list(routes)
    wanted = parse_subset(subset)
    known = {r.id for r in routes}
    missing = [i for i in wanted if i not in known]
    if missing:
        raise RunnerError(f"--routes-subset: no route with id {', '.join(missing)} (ids: {', '.join(sorted(known)) or 'none'})")
    keep = set(wanted)
    return [r for r in routes if r.id in keep]


def make_jobs(routes: Sequence[Route], repetitions: int) -> list[RouteJob]:
    if repetitions < 1:
        raise RunnerError(f"repetitions must be >= 1, got {repetitions}")
    return [RouteJob(i * repetitions + rep, route, rep) for i, route in enumerate(routes) for rep in range(repetitions)]


# --------------------------------------------------------------------------- wall clock
@contextlib.contextmanager
def wall_clock_guard(limit_s: float | None) -> Iterator[Callable[[], bool]]:
    """Raise ``_WallTimeExceeded`` in the running code once ``limit_s`` wall seconds pass.

    In the main thread a SIGALRM timer interrupts even a driver stuck in a Python loop; elsewhere the
    yielded ``expired()`` check is polled between steps. A call blocked inside C can't be interrupted.
    """
    if not limit_s or limit_s <= 0 or math.isinf(limit_s):
        yield lambda: False
        return
    deadline = time.monotonic() + limit_s

    def expired() -> bool:
        return time.monotonic() > deadline

    use_alarm = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
    if not use_alarm:
        yield expired
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise _WallTimeExceeded()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, limit_s)
    try:
        yield expired
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# --------------------------------------------------------------------------- videos (only on request)
class _EpisodeVideo:
    """BEV MP4 + overview PNG of one route; built only when the caller asked for videos."""

    def __init__(self, video_dir: Path, job: RouteJob, world: World, renderers: dict[str, Any]) -> None:
        from driving.render import BEVRenderer, VideoWriter

        town = getattr(world, "town", None)
        key = getattr(town, "name", None) or job.route.town
        if key not in renderers:
            stop_lines: list[Any] = []
            if town is not None:
                from driving.signals import load_stop_lines

                stop_lines = load_stop_lines(town)
            renderers[key] = BEVRenderer(world.carla_map, stop_lines=stop_lines)
        self.bev = renderers[key]
        self.bev.set_route(job.route)
        self.stem = video_dir / job.route_id
        self.video = VideoWriter(self.stem.with_suffix(".mp4"), fps=round(1.0 / world.dt))
        self.trajectory: list[tuple[float, float]] = []

    def add(self, tick: Any, monitor: Any) -> None:
        self.trajectory.append((tick.ego.x, tick.ego.y))
        self.video.append(self.bev.render(tick, monitor.route_completion, monitor.events))

    def close(self, route: Route, events: Sequence[Any]) -> None:
        import numpy as np

        from driving.render import render_overview, save_png

        self.video.close()
        image = render_overview(self.bev.layer, route, np.array(self.trajectory).reshape(-1, 2), events)
        save_png(image, self.stem.with_suffix(".png"))


# --------------------------------------------------------------------------- one route
def run_episode(world: World, job: RouteJob, driver_factory: Callable[[], Any], version: str, seed: int,
                wall_time_limit_s: float | None = None, blocked_time_s: float | None = None,
                video: _EpisodeVideo | None = None, on_tick: Callable[[Any], None] | None = None,
                ) -> tuple[Any, bool]:
    """Drive ``job`` once: (the monitor's ``RouteRecord`` with its status overridden on failures,
    whether the world must be rebuilt). Raises only ``KeyboardInterrupt``."""
    from driving.criteria import RouteMonitor

    route = job.route
    t0 = time.perf_counter()
    outcome = EpisodeOutcome()
    monitor = RouteMonitor(route, getattr(world, "town", None) or world.carla_map, version=version,
                           **({} if blocked_time_s is None else {"blocked_time_s": blocked_time_s}))
    world_failed = False
    with wall_clock_guard(wall_time_limit_s) as expired:
        try:
            try:
                scene = world.reset(route, seed)
            except Exception as exc:  # noqa: BLE001 - any simulator failure ends this route only
                world_failed = True
                outcome = EpisodeOutcome(STATUS_SIM_CRASHED, f"world.reset failed: {exc!r}")
                raise _EndRoute() from exc
            try:
                driver = driver_factory()
                driver.reset(route)
            except Exception as exc:  # noqa: BLE001
                log.exception("route %s: the driver could not be set up", job.route_id)
                outcome = EpisodeOutcome(STATUS_SETUP_FAILED, repr(exc))
                raise _EndRoute() from exc
            while not monitor.done:
                try:
                    control = driver.run_step(scene)
                    if not isinstance(control, VehicleControl):
                        raise TypeError(f"run_step returned {type(control).__name__}, not VehicleControl")
                except Exception as exc:  # noqa: BLE001
                    log.error("route %s: the driver crashed: %r", job.route_id, exc, exc_info=True)
                    outcome = EpisodeOutcome(STATUS_AGENT_CRASHED, repr(exc))
                    break
                try:
                    scene = world.step(control)
                    tick = world.tick()
                except Exception as exc:  # noqa: BLE001
                    log.error("route %s: the world failed: %r", job.route_id, exc, exc_info=True)
                    world_failed = True
                    outcome = EpisodeOutcome(STATUS_SIM_CRASHED, repr(exc))
                    break
                monitor.update(tick)
                if video is not None:
                    video.add(tick, monitor)
                if on_tick is not None:
                    on_tick(monitor)
                if expired():
                    raise _WallTimeExceeded()
        except _EndRoute:
            pass
        except _WallTimeExceeded:
            log.warning("route %s: wall time limit of %.0f s exceeded", job.route_id, wall_time_limit_s or 0)
            outcome = EpisodeOutcome(STATUS_WALL_TIME, f"wall time limit of {wall_time_limit_s} s exceeded")
            world_failed = True  # the alarm may have cut a simulator call short
    record = monitor.finalize(time.perf_counter() - t0)
    if outcome.status is not None:
        record.status = outcome.status
    if video is not None:
        video.close(route, monitor.events)
    return record, world_failed


class _EndRoute(Exception):
    """Internal: leave the episode loop early with ``outcome`` already set."""


# --------------------------------------------------------------------------- the run
WorldFactory = Callable[[str], World]


def embedded_world_factory(world_config: Any) -> WorldFactory:
    """Town name -> a new ``EmbeddedWorld`` with ``world_config`` (its town replaced)."""

    def make(town: str) -> World:
        from driving.worlds.embedded import EmbeddedWorld

        return EmbeddedWorld(dataclasses.replace(world_config, town=town))

    return make


def prepare_routes(routes: Sequence[Route]) -> list[Route]:
    """Check every route's town exists and trace the dense route of routes that only have keypoints.

    Raises ``UnknownTownError`` (a ``ValueError``) or ``RunnerError`` naming the route.
    """
    from driving.routes import RoutePlanner
    from driving.towns import get_town

    planners: dict[str, Any] = {}
    ready = []
    for route in routes:
        if len(route.dense) >= 2:
            ready.append(route)
            continue
        if route.town not in planners:
            planners[route.town] = RoutePlanner(get_town(route.town).load_map())
        try:
            ready.append(planners[route.town].plan(route))
        except Exception as exc:  # noqa: BLE001 - planner failures are the route file's fault
            raise RunnerError(f"route {route.id!r} (town {route.town}): cannot trace a path through its "
                              f"keypoints: {exc}") from exc
    return ready


def run_routes(routes: Sequence[Route], world_config: Any, driver_factory: Callable[[], Any],
               version: str = "2.0", checkpoint_path: str | Path = "results.json",
               video_dir: str | Path | None = None, *, repetitions: int = 1, resume: bool = False,
               seed: int = 0, wall_time_limit_s: float | None = 900.0, blocked_time_s: float | None = None,
               world_factory: WorldFactory | None = None, progress: bool = True) -> dict[str, Any]:
    """Run every route ``repetitions`` times and return the results dict (also in ``checkpoint_path``).

    ``world_config`` is an ``EmbeddedWorldConfig`` (ignored when ``world_factory`` is given);
    ``driver_factory()`` makes a fresh driver per route. ``results.json`` is rewritten atomically
    after every route; with ``resume`` routes already recorded there are skipped. ``blocked_time_s``
    overrides the leaderboard's 180 s blocked rule (tests); ``video_dir`` asks for a BEV MP4 and an
    overview PNG per route (nothing is rendered otherwise).
    """
    from driving.criteria.events import check_version
    from leaderboard_eval.results import read_results, write_results

    version = check_version(version)
    checkpoint = Path(checkpoint_path)
    jobs = make_jobs(prepare_routes(routes) if world_factory is None else list(routes), repetitions)
    factory = world_factory or embedded_world_factory(world_config)
    done: dict[str, Any] = {}
    if resume and checkpoint.exists():
        previous = read_results(checkpoint)
        for record in previous.get("_checkpoint", {}).get("records", []):
            if record.get("status") not in RERUN_ON_RESUME:
                done[record["route_id"]] = record
        log.info("resuming: %d of %d routes already in %s", sum(j.route_id in done for j in jobs), len(jobs), checkpoint)
    elif checkpoint.exists() and not resume:
        log.info("overwriting %s (pass resume=True / --resume to continue it)", checkpoint)
    videos = Path(video_dir) if video_dir else None
    renderers: dict[str, Any] = {}
    records: dict[int, Any] = {j.index: done[j.route_id] for j in jobs if j.route_id in done}

    def save(entry_status: str) -> dict[str, Any]:
        ordered = [records[i] for i in sorted(records)]
        return write_results(checkpoint, ordered, version, total=len(jobs), entry_status=entry_status)

    world: World | None = None
    world_town: str | None = None
    results: dict[str, Any] = {}
    with _progress(progress) as bar:
        task = bar.add_task("routes", total=len(jobs), completed=len(records), info="")
        try:
            for job in jobs:
                if job.index in records:
                    continue
                if world is None or world_town != job.route.town:
                    if world is not None:
                        world.close()
                        world = None
                    world = factory(job.route.town)
                    world_town = job.route.town
                bar.update(task, description=job.route_id)
                video = _EpisodeVideo(videos, job, world, renderers) if videos is not None else None

                def on_tick(monitor: Any, _task: Any = task) -> None:
                    bar.update(_task, info=f"RC {monitor.route_completion:5.1f}%")

                record, rebuild = run_episode(world, job, driver_factory, version, seed + job.repetition,
                                              wall_time_limit_s, blocked_time_s, video, on_tick)
                _set_identity(record, job)
                records[job.index] = record
                results = save("Started")
                bar.update(task, advance=1, info=f"{_status_of(record)}")
                log.info("%s: %s", job.route_id, _status_of(record))
                if rebuild:
                    world.close()
                    world = None
        except KeyboardInterrupt:
            log.warning("interrupted: %d of %d routes recorded in %s", len(records), len(jobs), checkpoint)
            save("Crashed")
            raise
        finally:
            if world is not None:
                world.close()
    return save("Finished") if jobs else results


def _set_identity(record: Any, job: RouteJob) -> None:
    """The leaderboard's record identity: route_id 'RouteScenario_<id>_rep<r>' and its index."""
    for name, value in (("route_id", job.route_id), ("index", job.index)):
        if isinstance(record, dict):
            record[name] = value
        else:
            setattr(record, name, value)


def _status_of(record: Any) -> str:
    return record["status"] if isinstance(record, dict) else record.status


@contextlib.contextmanager
def _progress(enabled: bool) -> Iterator[Any]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                  console=Console(stderr=True), disable=not enabled, transient=False) as bar:
        yield bar
