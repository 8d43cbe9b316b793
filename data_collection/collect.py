"""Drive route sets and record every frame: ``collect(routes, CollectConfig) -> [RouteSummary]``.

Two modes, one loop (the leaderboard runner's ``run_episode`` with a recording ``on_step`` hook):

- **expert**: ``driver="expert"``, ``labeller="expert"`` — the expert drives; its own actions are the
  labels (no second expert is run: it would compute the same).
- **DAgger**: another driver drives (``"route_follower"``, a class path, or a Hydra spec with
  ``_target_``) while the labeller (the expert) labels the scene the driver saw, every tick, with its
  own controller; it never drives.

One HDF5 file per (route, repetition): ``<out>/<route_id>_rep<r>.h5``, written as ``.partial`` and
renamed when complete. A rerun is a resume: complete files are skipped (after checking that they were
recorded from the same route and recording config), ``.partial`` leftovers are deleted and their
routes redone. ``<out>/results.json`` (the leaderboard's format) is rewritten atomically after every
route and covers the skipped routes too (their records are read back from the files' attributes).
A lock file keeps two collections out of one folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data_collection.episode import (
    LABELLER_IS_DRIVER,
    RouteSummary,
    WorkerSettings,
    episode_name,
    episode_path,
    make_driver,
    partial_path,
    route_digest,
)
from data_collection.parallel import BACKENDS, run_jobs
from driving.worlds.embedded import EmbeddedWorldConfig

log = logging.getLogger(__name__)

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
DRIVER_ALIASES = {"expert": "expert.ExpertDriver", "route_follower": "driving.drivers.RouteFollower"}
LOCK_FILE = ".collect.lock"


class CollectError(ValueError):
    """A user-facing problem with a collection's inputs (config, output folder, existing files)."""


@dataclass
class CollectConfig:
    """A collection (``conf/collect.yaml`` holds the same keys, documented)."""

    out_dir: str | Path = "data"
    driver: str | Mapping[str, Any] = "expert"  # conf/driver name, class path, or spec with _target_
    labeller: str | Mapping[str, Any] | None = "expert"  # same forms; "driver" = its own actions; None
    record_every: int = 1  # ticks (20 Hz) between recorded frames
    workers: int = 1
    backend: str = "process"  # process | ray | inline (in this process: no crash isolation)
    version: str = "2.0"  # leaderboard criteria/scoring
    seed: int = 0  # world seed of repetition r is seed + r
    repetitions: int = 1
    world: EmbeddedWorldConfig = field(default_factory=EmbeddedWorldConfig)
    wall_time_limit_s: float | None = 900.0
    blocked_time_s: float | None = None  # None = the leaderboard's 180 s rule
    overwrite: bool = False  # record every route again (each file is replaced when its route is done)
    progress: bool = True
    ray_address: str | None = None  # None: a local Ray with `workers` CPUs
    results_file: str = "results.json"  # in out_dir


# --------------------------------------------------------------------------- driver specs
def driver_spec(value: str | Mapping[str, Any], what: str) -> dict[str, Any]:
    """A Hydra spec from a conf/driver name, an alias, a class path or a mapping with ``_target_``."""
    if isinstance(value, Mapping):
        spec = {str(k): v for k, v in value.items()}
        if "_target_" not in spec:
            raise CollectError(f"{what}: a driver spec needs _target_ (got keys {', '.join(spec) or 'none'})")
        return spec
    name = str(value).strip()
    conf = CONF_DIR / "driver" / f"{name}.yaml"
    if conf.is_file():
        from omegaconf import OmegaConf

        return dict(OmegaConf.to_container(OmegaConf.load(conf), resolve=True))  # type: ignore[arg-type]
    if name in DRIVER_ALIASES:
        return {"_target_": DRIVER_ALIASES[name]}
    if "." in name or ":" in name:
        return {"_target_": name.replace(":", ".")}
    raise CollectError(f"{what}: {name!r} is not a config in {CONF_DIR / 'driver'} nor a class path")


def labeller_spec(value: str | Mapping[str, Any] | None, driver: dict[str, Any]) -> dict[str, Any] | str | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
        return None
    if isinstance(value, str) and value.strip() == LABELLER_IS_DRIVER:
        return LABELLER_IS_DRIVER
    spec = driver_spec(value, "labeller")
    return LABELLER_IS_DRIVER if spec == driver else spec


def check_drivers(driver: dict[str, Any], labeller: dict[str, Any] | str | None) -> None:
    """Build each once now, so a bad spec is one clear error rather than a failure on every route."""
    from driving.actions import ActionDriver

    probes = {"driver": driver} if not isinstance(labeller, dict) else {"driver": driver, "labeller": labeller}
    for what, spec in probes.items():
        try:
            probe = make_driver(spec)
        except Exception as exc:  # noqa: BLE001 - any construction error is a config error here
            cause = exc.__cause__ or exc
            raise CollectError(f"{what}: cannot create {spec.get('_target_')!r}: {cause}") from exc
        is_labeller = what == "labeller" or labeller == LABELLER_IS_DRIVER
        if is_labeller and labeller is not None and not isinstance(probe, ActionDriver):
            raise CollectError(f"{what}: {spec.get('_target_')!r} cannot label: it is not a "
                               "driving.actions.ActionDriver (no act())")
        for name in ("destroy", "close"):  # drivers holding workers release them
            method = getattr(probe, name, None)
            if callable(method):
                method()
                break


def recording_config(config: CollectConfig, driver: dict[str, Any], labeller: Any) -> dict[str, Any]:
    """What a route's data depends on besides the route: stored in each file, compared on resume."""
    world = dataclasses.asdict(config.world)
    world.pop("town", None)  # each route names its own town
    world.pop("seed", None)  # the world is reset with seed + repetition
    world.pop("cache_dir", None)  # where towns are cached changes nothing recorded
    return {"world": world, "driver": driver, "labeller": labeller, "record_every": int(config.record_every),
            "version": str(config.version), "seed": int(config.seed), "blocked_time_s": config.blocked_time_s}


# --------------------------------------------------------------------------- existing files
def read_file_meta(path: Path) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(attributes, summary) of a complete episode file, without reading its frames; None (and a
    warning: its route is recorded again) when the file is incomplete or unreadable."""
    from data_collection.schema import DatasetFileError
    from data_collection.storage import read_metadata

    try:
        return read_metadata(path)
    except (OSError, ValueError, DatasetFileError) as exc:
        log.warning("%s: unusable (%s); its route is recorded again", path, exc)
        return None


def summary_from_file(job: Any, path: Path, summary: Mapping[str, Any], version: str) -> RouteSummary:
    """The summary of a route an earlier run recorded, rebuilt from its file."""
    from driving.scoring import RouteRecord

    record = RouteRecord.from_json(summary["record"], version)
    record.index = job.index  # a different route set may have moved it
    return RouteSummary(index=job.index, route_id=job.route.id, repetition=job.repetition,
                        record_id=record.route_id, status=record.status, driving_score=record.driving_score,
                        route_completion=record.route_completion, infraction_penalty=record.infraction_penalty,
                        infractions=record.num_infractions, frames=int(summary.get("frames", 0)),
                        path=str(path), record=record.to_json(), skipped=True)


def _check_same_recording(path: Path, attrs: Mapping[str, Any], job: Any, expected: dict[str, Any]) -> None:
    if attrs.get("route_digest") != route_digest(job.route):
        raise CollectError(f"{path}: was recorded on another route with id {job.route.id!r}; "
                           "use another --out (or --overwrite)")
    stored = attrs.get("config") if isinstance(attrs.get("config"), dict) else {}
    expected = json.loads(json.dumps(expected))  # the JSON view the file holds
    if stored != expected:
        keys = sorted(k for k in set(stored) | set(expected) if stored.get(k) != expected.get(k))
        raise CollectError(f"{path}: was recorded with another config ({', '.join(keys)} differ); "
                           "use another --out (or --overwrite)")


@contextlib.contextmanager
def _folder_lock(out: Path) -> Iterator[None]:
    """One collection per folder at a time (the kernel drops the lock if the collector is killed)."""
    handle = open(out / LOCK_FILE, "a+")  # noqa: SIM115 - held for the whole run
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CollectError(f"--out {out}: another collection is writing into it") from None
        yield
    finally:
        handle.close()


# --------------------------------------------------------------------------- the run
def plan_jobs(routes: Sequence[Any], config: CollectConfig, expected: dict[str, Any]) -> tuple[list, list]:
    """(jobs to run, summaries of jobs already recorded). Deletes ``.partial`` leftovers of the jobs
    to run and final files that are not complete."""
    from leaderboard_eval.runner import make_jobs

    names: dict[str, str] = {}
    for route in routes:
        name = episode_name(route.id, 0)
        if name in names:
            raise CollectError(f"routes: ids {names[name]!r} and {route.id!r} map to the same file name")
        names[name] = route.id
    out = Path(config.out_dir)
    todo, done = [], []
    for job in make_jobs(routes, int(config.repetitions)):
        final = episode_path(out, job.route.id, job.repetition)
        found = read_file_meta(final) if final.exists() and not config.overwrite else None
        if found is not None and "record" in found[1]:
            _check_same_recording(final, found[0], job, expected)
            done.append(summary_from_file(job, final, found[1], str(config.version)))
            continue
        if final.exists() and not config.overwrite:
            final.unlink()  # incomplete: redo
        partial = partial_path(final)
        if partial.exists():
            log.info("%s: left by an interrupted run; its route is recorded again", partial.name)
            partial.unlink()
        todo.append(job)
    return todo, done


def collect(routes: Sequence[Any], config: CollectConfig) -> list[RouteSummary]:
    """Record every route ``config.repetitions`` times; returns one summary per (route, repetition),
    in route order (routes recorded by an earlier run have ``skipped=True``). ``<out>/results.json``
    holds their leaderboard records. Raises ``CollectError`` (or the runner's ``RunnerError``,
    ``UnknownTownError``) for bad inputs before anything is driven; ``KeyboardInterrupt`` after the
    workers stopped and results.json was written."""
    from driving.criteria.events import check_version
    from driving.scoring import RouteRecord
    from leaderboard_eval.results import write_results
    from leaderboard_eval.runner import prepare_output_dir, prepare_routes

    version = check_version(str(config.version))
    if config.backend not in BACKENDS:
        raise CollectError(f"backend: {config.backend!r} is not one of {', '.join(BACKENDS)}")
    if int(config.record_every) < 1:
        raise CollectError(f"record_every must be >= 1, got {config.record_every}")
    if int(config.workers) < 1:
        raise CollectError(f"workers must be >= 1, got {config.workers}")
    out = prepare_output_dir(config.out_dir, "--out").resolve()
    config = dataclasses.replace(config, out_dir=out)
    driver = driver_spec(config.driver, "driver")
    labeller = labeller_spec(config.labeller, driver)
    check_drivers(driver, labeller)
    expected = recording_config(config, driver, labeller)
    routes = prepare_routes(routes)
    with _folder_lock(out):
        todo, done = plan_jobs(routes, config, expected)
        summaries: dict[int, RouteSummary] = {s.index: s for s in done}
        total = len(todo) + len(done)
        results_path = out / config.results_file

        def save() -> None:
            records = [RouteRecord.from_json(s.record, version) for s in summaries.values()]
            write_results(results_path, records, version, total_routes=total)

        save()
        if done:
            log.info("resuming: %d of %d routes already recorded in %s", len(done), total, out)
        settings = WorkerSettings(
            out_dir=out, world=config.world, driver=driver, labeller=labeller,
            record_every=int(config.record_every), version=version, seed=int(config.seed),
            wall_time_limit_s=config.wall_time_limit_s, blocked_time_s=config.blocked_time_s,
            recording_config=expected, log_level=logging.getLogger().getEffectiveLevel())
        from data_collection.progress import CollectProgress

        with CollectProgress(total, len(done), bool(config.progress)) as progress:

            def on_event(kind: str, job: Any, payload: Any) -> None:
                progress.on_event(kind, job, payload)
                if kind == "done":
                    summaries[job.index] = payload
                    save()
                    log.info("%s: %s (DS %.2f, %d frames)%s", payload.record_id, payload.status,
                             payload.driving_score, payload.frames, f" - {payload.error}" if payload.error else "")

            try:
                run_jobs(todo, settings, on_event, workers=int(config.workers), backend=config.backend,
                         ray_address=config.ray_address)
            except KeyboardInterrupt:
                save()
                log.warning("interrupted: %d of %d routes recorded in %s", len(summaries), total, out)
                raise
    return [summaries[i] for i in sorted(summaries)]



# --------------------------------------------------------------------------- summaries
def results_of(summaries: Sequence[RouteSummary], version: str) -> dict[str, Any]:
    """The leaderboard results dict of ``summaries`` (+ ``_collect``: files and frames written)."""
    from driving.scoring import RouteRecord
    from leaderboard_eval.results import results_dict

    records = [RouteRecord.from_json(s.record, version) for s in summaries]
    for s, record in zip(summaries, records, strict=True):
        record.index = s.index
    data = results_dict(records, version)
    data["_collect"] = {"files": sum(1 for s in summaries if s.path),
                        "frames": sum(s.frames for s in summaries if s.path)}
    return data


def summarize_dir(out_dir: str | Path) -> dict[str, Any]:
    """The summary of every complete episode file in ``out_dir``, rebuilt from the files' attributes
    (``python -m data_collection --show DIR``). Raises ``CollectError`` for a folder without any."""
    from leaderboard_eval.runner import RouteJob

    folder = Path(out_dir)
    if not folder.is_dir():
        raise CollectError(f"--show {folder}: not a folder")
    found = []
    for path in sorted(folder.glob("*.h5")):
        meta = read_file_meta(path)
        if meta is not None and "record" in meta[1]:
            found.append((int(meta[0].get("index", 0)), path.name, path, meta))
    if not found:
        raise CollectError(f"--show {folder}: no complete episode file (*.h5) in it")
    version = str(found[0][3][0].get("version", "2.0"))
    summaries = []
    for i, (_, _, path, (attrs, summary)) in enumerate(sorted(found)):
        job = RouteJob(i, _FileRoute(str(attrs.get("route_id", path.stem))), int(attrs.get("repetition", 0)))
        summaries.append(summary_from_file(job, path, summary, version))
    return results_of(summaries, version)


@dataclass
class _FileRoute:
    """The route of a file being summarised (only its id is known)."""

    id: str
