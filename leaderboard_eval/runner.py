"""The embedded route runner: drive a route set closed loop and score it like the CARLA leaderboard.

Per route (and repetition): ``world.reset`` -> a fresh driver (``driver_factory()``, like the
leaderboard's new agent per route) -> loop ``driver.run_step(scene)`` -> ``world.step`` ->
``RouteMonitor.update(world.tick())`` until the monitor ends the route -> ``finalize`` -> the record
is appended and ``results.json`` is rewritten atomically. Failures end one route, never the run:

- the driver raises (setup or ``run_step``) -> "Failed - Agent couldn't be set up" / "Failed - Agent crashed"
- the world raises -> "Failed - Simulation crashed" (the world is rebuilt for the next route)
- the route exceeds its wall-clock budget -> "Failed - Wall time limit exceeded"
- a stuck ego -> the monitor's leaderboard rule, "Failed - Agent got blocked"
- the route's video fails (render, encode, write) -> one warning, no video for that route; the
  route and its score are unaffected

Ctrl-C writes the results so far (a partial checkpoint: progress [done, total], entry_status
"Started") and re-raises; ``resume=True`` then skips every route already recorded (routes the
simulator lost are run again).
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

from driving import paths
from driving.types import Route, VehicleControl, World

log = logging.getLogger(__name__)

# Failure messages (the record's status is "Failed - <message>"), driving.scoring.FAILURE_MESSAGES.
STATUS_SETUP_FAILED = "Agent couldn't be set up"
STATUS_AGENT_CRASHED = "Agent crashed"
STATUS_SIM_CRASHED = "Simulation crashed"
STATUS_WALL_TIME = "Wall time limit exceeded"
VIDEO_FRAME_STRIDE = 2  # episode videos at 10 fps: a frame every second 20 Hz tick
RERUN_ON_RESUME = ("Failed - " + STATUS_SIM_CRASHED,)  # the leaderboard re-runs routes the simulator lost


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
    def name(self) -> str:
        """Unique name for logs and video files."""
        return f"RouteScenario_{self.route.id}_rep{self.repetition}"

    def record_id(self, version: str) -> str:
        """The record's route_id: 'RouteScenario_<id>_rep<r>' (2.x) or 'RouteScenario_<id>' (1.0)."""
        from driving.scoring import route_record_id

        return route_record_id(self.route.id, self.repetition, version)


@dataclass
class EpisodeOutcome:
    """What ended a route besides the monitor's own rule (None = the monitor decided)."""

    status: str | None = None
    message: str = ""


# --------------------------------------------------------------------------- output paths
def prepare_output_dir(path: str | Path, what: str) -> Path:
    """Create ``path`` (and its parents) as a writable directory, or raise ``RunnerError`` naming it."""
    try:
        return paths.prepare_output_dir(path, what)
    except paths.OutputPathError as exc:
        raise RunnerError(str(exc)) from None


def check_checkpoint_path(path: str | Path) -> Path:
    """The checkpoint must be a file path (not a folder) whose folder exists or can be created."""
    checkpoint = Path(path)
    if checkpoint.is_dir():
        raise RunnerError(f"checkpoint {checkpoint}: is a directory (give a file path, e.g. {checkpoint / 'results.json'})")
    if checkpoint.exists() and not checkpoint.is_file():
        raise RunnerError(f"checkpoint {checkpoint}: exists and is not a regular file")
    prepare_output_dir(checkpoint.parent, f"checkpoint {checkpoint}: folder")
    return checkpoint


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
    """Routes named by ``subset`` (file order kept); every one asked for must exist.

    Items are route ids, as in the leaderboard. In a file where no id is a number (generated sets
    use ids like ``grid_tls_0_3``), a number is the route's 0-based position in the file instead.
    """
    if not subset:
        return list(routes)
    wanted = parse_subset(subset)
    by_id = {r.id: r for r in routes}
    positional = not any(r.id.isdigit() for r in routes)
    chosen: set[int] = set()
    missing = []
    for item in wanted:
        if item in by_id:
            chosen.add(next(i for i, r in enumerate(routes) if r.id == item))
        elif positional and item.isdigit() and int(item) < len(routes):
            chosen.add(int(item))
        else:
            missing.append(item)
    if missing:
        raise RunnerError(f"--routes-subset: no route with id {', '.join(missing)} "
                          f"(ids: {', '.join(by_id) or 'none'})")
    return [r for i, r in enumerate(routes) if i in chosen]


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
    """The runner's side of ``driving.render.EpisodeRecorder``: one BEV renderer per town.

    Filming never ends a route: the first exception from rendering or writing logs one warning and
    turns the video off for the rest of that route (the route itself, and its score, go on).
    """

    def __init__(self, video_dir: Path, job: RouteJob, world: World, renderers: dict[str, Any]) -> None:
        from driving.render import BEVRenderer, EpisodeRecorder

        self.name = job.name
        self.failed = False
        town = getattr(world, "town", None)
        key = getattr(town, "name", None) or job.route.town
        if key not in renderers:
            stop_lines: list[Any] = []
            if town is not None:
                from driving.signals import load_stop_lines

                stop_lines = load_stop_lines(town)
            renderers[key] = BEVRenderer(world.carla_map, stop_lines=stop_lines)
        self.recorder = EpisodeRecorder(video_dir / job.name, renderers[key], job.route, world.dt,
                                        VIDEO_FRAME_STRIDE)

    @classmethod
    def start(cls, video_dir: Path, job: RouteJob, world: World, renderers: dict[str, Any]) -> _EpisodeVideo | None:
        """A recorder for ``job``, or None (one warning) when it can't be set up."""
        try:
            return cls(video_dir, job, world, renderers)
        except Exception as exc:  # noqa: BLE001 - a video is never worth a route
            log.warning("route %s: no video (%s: %s)", job.name, type(exc).__name__, exc)
            return None

    def add(self, tick: Any, monitor: Any) -> None:
        if self.failed:
            return
        try:
            self.recorder.add(tick, monitor.route_completion, monitor.events)
        except Exception as exc:  # noqa: BLE001
            self._fail(exc)

    def close(self, route: Route, events: Sequence[Any]) -> None:
        if self.failed:
            return
        try:
            self.recorder.close(events)
        except Exception as exc:  # noqa: BLE001
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        log.warning("route %s: video turned off for this route (%s: %s)", self.name, type(exc).__name__, exc)
        self.failed = True
        with contextlib.suppress(Exception):
            self.recorder.abort()


# --------------------------------------------------------------------------- one route
@dataclass
class _EpisodeState:
    driver: Any = None
    outcome: EpisodeOutcome = dataclasses.field(default_factory=EpisodeOutcome)
    world_failed: bool = False


StepHook = Callable[[Any, Any, VehicleControl, Any, Any, list], None]


def run_episode(world: World, job: RouteJob, driver_factory: Callable[[], Any], version: str, seed: int,
                wall_time_limit_s: float | None = None, blocked_time_s: float | None = None,
                video: _EpisodeVideo | None = None, on_tick: Callable[[Any], None] | None = None,
                on_step: StepHook | None = None) -> tuple[Any, bool]:
    """Drive ``job`` once: (the monitor's ``RouteRecord`` with its status overridden on failures,
    whether the world must be rebuilt). Raises only ``KeyboardInterrupt``.

    ``on_step(scene, driver, control, tick, monitor, new_events)`` is called once per tick after the
    monitor's update: ``scene`` is the one the driver acted on to produce ``control``, ``tick`` the
    world's state after applying it, ``new_events`` the monitor's events of this tick (data recording).
    An exception from it ends the route like a driver crash (``Failed - Agent crashed``).
    """
    t0 = time.perf_counter()
    monitor = make_monitor(world, job, version, blocked_time_s)
    state = _EpisodeState()
    # The try is outside the guard so an alarm landing anywhere inside it is still caught here.
    try:
        with wall_clock_guard(wall_time_limit_s) as expired:
            _drive(world, job, driver_factory, monitor, seed, state, expired, video, on_tick, on_step)
    except KeyboardInterrupt:
        _release(state.driver)
        if video is not None:  # keep what was filmed: an interrupted episode is worth watching
            video.close(job.route, monitor.events)
        raise
    except _WallTimeExceeded:
        log.warning("route %s: wall time limit of %.0f s exceeded", job.name, wall_time_limit_s or 0)
        state.outcome = EpisodeOutcome(STATUS_WALL_TIME, f"wall time limit of {wall_time_limit_s} s exceeded")
        state.world_failed = True  # the alarm may have cut a simulator call short
    _release(state.driver)
    # An external failure goes in as the leaderboard's failure message; a timeout, route deviation
    # or block seen on the same route still takes precedence, as in compute_route_statistics.
    outcome = state.outcome
    record = monitor.finalize(time.perf_counter() - t0, failure_message=outcome.status or "")
    if outcome.status:
        log.warning("route %s ended: %s (%s)", job.name, outcome.status, outcome.message)
    if video is not None:
        video.close(job.route, monitor.events)
    return record, state.world_failed


def _drive(world: World, job: RouteJob, driver_factory: Callable[[], Any], monitor: Any, seed: int,
           state: _EpisodeState, expired: Callable[[], bool], video: _EpisodeVideo | None,
           on_tick: Callable[[Any], None] | None, on_step: StepHook | None = None) -> None:
    """The closed loop; returns when the monitor ends the route or something fails (``state``)."""
    route = job.route
    try:
        scene = world.reset(route, seed)
    except Exception as exc:  # noqa: BLE001 - any simulator failure ends this route only
        log.error("route %s: world.reset failed: %r", job.name, exc, exc_info=True)
        state.world_failed = True
        state.outcome = EpisodeOutcome(STATUS_SIM_CRASHED, f"world.reset failed: {exc!r}")
        return
    try:
        state.driver = driver_factory()
        state.driver.reset(route)
    except Exception as exc:  # noqa: BLE001
        log.exception("route %s: the driver could not be set up", job.name)
        state.outcome = EpisodeOutcome(STATUS_SETUP_FAILED, repr(exc))
        return
    driver = state.driver
    while not monitor.done:
        try:
            control = driver.run_step(scene)
            if not isinstance(control, VehicleControl):
                raise TypeError(f"run_step returned {type(control).__name__}, not VehicleControl")
        except Exception as exc:  # noqa: BLE001
            log.error("route %s: the driver crashed: %r", job.name, exc, exc_info=True)
            state.outcome = EpisodeOutcome(STATUS_AGENT_CRASHED, repr(exc))
            return
        acted_on = scene
        try:
            scene = world.step(control)
            tick = world.tick()
        except Exception as exc:  # noqa: BLE001
            log.error("route %s: the world failed: %r", job.name, exc, exc_info=True)
            state.world_failed = True
            state.outcome = EpisodeOutcome(STATUS_SIM_CRASHED, repr(exc))
            return
        new_events = monitor.update(tick)
        if on_step is not None:
            try:
                on_step(acted_on, driver, control, tick, monitor, new_events)
            except Exception as exc:  # noqa: BLE001 - the hook (a labeller, a recorder) fails its route only
                log.error("route %s: the step hook failed: %r", job.name, exc, exc_info=True)
                state.outcome = EpisodeOutcome(STATUS_AGENT_CRASHED, f"on_step: {exc!r}")
                return
        if video is not None:
            video.add(tick, monitor)
        if on_tick is not None:
            on_tick(monitor)
        if expired():
            raise _WallTimeExceeded()


def _release(driver: Any) -> None:
    """The leaderboard's ``agent.destroy()`` after every route, for drivers that have one."""
    for name in ("destroy", "close"):
        method = getattr(driver, name, None)
        if callable(method):
            try:
                method()
            except Exception as exc:  # noqa: BLE001 - a failing cleanup must not end the run
                log.warning("driver.%s() failed: %r", name, exc)
            return


def make_monitor(world: World, job: RouteJob, version: str, blocked_time_s: float | None = None) -> Any:
    """The ``RouteMonitor`` of ``job`` (the town's stop lines when the world has a town)."""
    from driving.criteria import RouteMonitor

    return RouteMonitor(job.route, getattr(world, "town", None) or world.carla_map, version=version,
                        index=job.index, repetition=job.repetition, blocked_time_s=blocked_time_s)


# --------------------------------------------------------------------------- the run
WorldFactory = Callable[[str], World]


def embedded_world_factory(world_config: Any, world_class: type | None = None) -> WorldFactory:
    """Town name -> a new ``EmbeddedWorld`` (or ``world_class``, a subclass such as
    ``SumoDrivenWorld``) with ``world_config`` (its town replaced)."""

    def make(town: str) -> World:
        from driving.worlds.embedded import EmbeddedWorld

        return (world_class or EmbeddedWorld)(dataclasses.replace(world_config, town=town))

    return make


def prepare_routes(routes: Sequence[Route]) -> list[Route]:
    """Check every route's town exists and trace the dense route of routes that only have keypoints.

    Raises ``UnknownTownError`` (a ``ValueError``) or ``RunnerError`` naming the route.
    """
    from driving.towns import get_town

    towns = {name: get_town(name) for name in sorted({r.town for r in routes})}  # unknown town: fail now
    planners: dict[str, Any] = {}
    ready = []
    for route in routes:
        if len(route.dense) >= 2:
            ready.append(route)
            continue
        if route.town not in planners:
            from driving.routes import RoutePlanner

            planners[route.town] = RoutePlanner(towns[route.town].load_map())
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
               world_factory: WorldFactory | None = None, progress: bool = True,
               on_record: Callable[[Any], None] | None = None, on_step: StepHook | None = None) -> dict[str, Any]:
    """Run every route ``repetitions`` times and return the results dict (also in ``checkpoint_path``).

    ``world_config`` is an ``EmbeddedWorldConfig`` (ignored when ``world_factory`` is given);
    ``driver_factory()`` makes a fresh driver per route. ``results.json`` is rewritten atomically
    after every route; with ``resume`` routes already recorded there are skipped. ``blocked_time_s``
    overrides the leaderboard's 180 s blocked rule (tests); ``video_dir`` asks for a BEV MP4 and an
    overview PNG per route (nothing is rendered otherwise). ``on_record(record)`` receives each new
    ``RouteRecord`` with its ``events`` (positions, frames; results.json keeps only the messages).
    ``on_step`` is ``run_episode``'s per-tick hook, for every route.
    A checkpoint path that is a folder, or whose folder can't be created, raises ``RunnerError``.
    """
    from driving.criteria.events import check_version
    from leaderboard_eval.results import read_records, write_results

    version = check_version(version)
    checkpoint = check_checkpoint_path(checkpoint_path)
    jobs = make_jobs(prepare_routes(routes) if world_factory is None else list(routes), repetitions)
    factory = world_factory or embedded_world_factory(world_config)
    records: dict[int, Any] = {}
    if resume and checkpoint.exists():
        previous = {_resume_key(r.route_id, r.index, version, repetitions): r for r in read_records(checkpoint)
                    if r.status not in RERUN_ON_RESUME}
        for job in jobs:
            old = previous.get(_resume_key(job.record_id(version), job.index, version, repetitions))
            if old is not None:
                old.index = job.index  # a different subset may have moved it
                records[job.index] = old
        log.info("resuming: %d of %d routes already in %s", len(records), len(jobs), checkpoint)
    elif checkpoint.exists():
        log.info("overwriting %s (resume=True / --resume continues it instead)", checkpoint)
    videos = Path(video_dir) if video_dir else None
    renderers: dict[str, Any] = {}

    def save() -> dict[str, Any]:
        return write_results(checkpoint, list(records.values()), version, total_routes=len(jobs))

    results = save()
    world: World | None = None
    world_town: str | None = None
    with _progress(progress) as bar:
        task = bar.add_task("routes", total=len(jobs), completed=len(records), info="")
        try:
            for job in jobs:
                if job.index in records:
                    continue
                if world is None or world_town != job.route.town:
                    _close_quietly(world)
                    world = None
                    world = factory(job.route.town)
                    world_town = job.route.town
                bar.update(task, description=job.record_id(version))
                video = _EpisodeVideo.start(videos, job, world, renderers) if videos is not None else None

                ticks = [0]

                def on_tick(monitor: Any, _task: Any = task, _ticks: list[int] = ticks) -> None:
                    _ticks[0] += 1
                    if _ticks[0] % 20 == 0:  # once per simulated second is plenty for a progress line
                        bar.update(_task, info=f"RC {monitor.route_completion:5.1f}%")

                record, rebuild = run_episode(world, job, driver_factory, version, seed + job.repetition,
                                              wall_time_limit_s, blocked_time_s, video, on_tick, on_step)
                records[job.index] = record
                results = save()
                if on_record is not None:
                    on_record(record)
                bar.update(task, advance=1, info=record.status)
                log.info("%s: %s (DS %.2f)", record.route_id, record.status, record.driving_score)
                if rebuild:
                    _close_quietly(world)
                    world = None
        except KeyboardInterrupt:
            log.warning("interrupted: %d of %d routes recorded in %s", len(records), len(jobs), checkpoint)
            save()
            raise
        finally:
            _close_quietly(world)
    return results


def _close_quietly(world: World | None) -> None:
    """Close a world that may be broken (after a crash): a failing close must not end the run."""
    if world is None:
        return
    try:
        world.close()
    except Exception as exc:  # noqa: BLE001
        log.warning("closing the world failed: %r", exc)


def _resume_key(route_id: str, index: int, version: str, repetitions: int) -> str:
    # 1.0 ids carry no repetition ('RouteScenario_<id>'), so repeated 1.0 runs match by position too.
    return f"{route_id}#{index}" if version == "1.0" and repetitions > 1 else route_id


@contextlib.contextmanager
def _progress(enabled: bool) -> Iterator[Any]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                  console=Console(stderr=True), disable=not enabled, transient=False) as bar:
        yield bar
