"""Loading ``carla.Map`` offline and keeping the carla library's crashing calls away from the caller.

``carla.Map(name, xodr_text)`` needs no simulator server. Two carla 0.9.16 calls are known to kill or
break the process on generated maps (see shared/reference/embedded-world.md):
``Waypoint.previous_until_lane_start()`` segfaults on a lane without a predecessor and
``Waypoint.next_until_lane_end()`` throws on ramp lanes. In-process code uses the pure-Python walks
below instead; when the native call itself is wanted, ``isolated_lane_walk`` runs it in a child
process so a crash becomes a ``CarlaCallCrashed`` exception.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import carla

log = logging.getLogger(__name__)

_MAPS: dict[tuple[str, float], carla.Map] = {}
_MAPS_LOCK = threading.Lock()


class MapLoadError(RuntimeError):
    """The OpenDRIVE file is missing or carla could not parse it; the message names the file."""


class CarlaCallCrashed(RuntimeError):
    """A carla call run in a child process crashed (signal) or raised; the caller survives."""


def load_carla_map(xodr_file: str | Path, name: str | None = None) -> carla.Map:
    """``carla.Map`` over an OpenDRIVE file, cached per process by (path, mtime)."""
    path = Path(xodr_file)
    try:
        stamp = path.stat().st_mtime
    except OSError as exc:
        raise MapLoadError(f"OpenDRIVE file {path} cannot be read: {exc.strerror}") from None
    key = (str(path.resolve()), stamp)
    with _MAPS_LOCK:
        cached = _MAPS.get(key)
        if cached is not None:
            return cached
        text = path.read_text()
        if "<OpenDRIVE" not in text:
            raise MapLoadError(f"OpenDRIVE file {path} has no <OpenDRIVE> element")
        try:
            cmap = carla.Map(name or path.stem, text)
        except RuntimeError as exc:
            raise MapLoadError(f"carla could not load OpenDRIVE file {path}: {exc}") from None
        _MAPS[key] = cmap
        return cmap


# ----------------------------------------------------------------------------- safe lane walks
def walk_to_lane_end(wp: carla.Waypoint, step: float = 1.0) -> list[carla.Waypoint]:
    """Waypoints every ``step`` m to the end of ``wp``'s lane (pure Python; never crashes).

    Equivalent to ``next_until_lane_end`` but built from ``next`` (which branches safely) and
    restricted to the same road and lane.
    """
    out = [wp]
    current = wp
    while True:
        nxt = [w for w in current.next(step) if _same_lane(w, current)]
        if not nxt:
            break
        best = max(nxt, key=lambda w: _progress(current, w))
        if _progress(current, best) <= 1e-6:
            break
        out.append(best)
        current = best
    return out


def walk_to_lane_start(wp: carla.Waypoint, step: float = 1.0) -> list[carla.Waypoint]:
    """Waypoints every ``step`` m back to the start of ``wp``'s lane, nearest first (pure Python).

    Replaces ``previous_until_lane_start``, which segfaults on a lane without a predecessor.
    """
    out = [wp]
    current = wp
    while True:
        prev = [w for w in current.previous(step) if _same_lane(w, current)]
        if not prev:
            break
        best = min(prev, key=lambda w: _progress(current, w))
        if _progress(current, best) >= -1e-6:
            break
        out.append(best)
        current = best
    return out


def _same_lane(a: carla.Waypoint, b: carla.Waypoint) -> bool:
    return a.road_id == b.road_id and a.lane_id == b.lane_id


def _progress(a: carla.Waypoint, b: carla.Waypoint) -> float:
    """Signed progress from a to b along the lane's driving direction (right lanes: +s)."""
    ds = b.s - a.s
    return ds if a.lane_id < 0 else -ds


# ----------------------------------------------------------------------------- isolated native calls
@dataclass(frozen=True)
class LanePoint:
    road_id: int
    lane_id: int
    s: float
    x: float
    y: float
    yaw: float


def _lane_walk_child(conn: Any, xodr_file: str, road_id: int, lane_id: int, s: float, method: str,
                     distance: float) -> None:
    try:
        cmap = carla.Map(Path(xodr_file).stem, Path(xodr_file).read_text())
        wp = cmap.get_waypoint_xodr(road_id, lane_id, s)
        if wp is None:
            conn.send(("error", f"no waypoint at road {road_id} lane {lane_id} s={s}"))
            return
        wps = getattr(wp, method)(distance)
        conn.send(("ok", [LanePoint(w.road_id, w.lane_id, w.s, w.transform.location.x,
                                    w.transform.location.y, w.transform.rotation.yaw) for w in wps]))
    except Exception as exc:  # the point of the child is to report, never to raise past it
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def isolated_lane_walk(xodr_file: str | Path, road_id: int, lane_id: int, s: float,
                       method: str = "next_until_lane_end", distance: float = 1.0,
                       timeout: float = 60.0) -> list[LanePoint]:
    """Run a native lane walk (``next_until_lane_end`` / ``previous_until_lane_start``) in a child.

    Returns the walk's points; raises ``CarlaCallCrashed`` naming the call if the child segfaults,
    raises, or exceeds ``timeout``.
    """
    if method not in ("next_until_lane_end", "previous_until_lane_start"):
        raise ValueError(f"method must be next_until_lane_end or previous_until_lane_start, got {method!r}")
    what = f"{method}({distance}) at road {road_id} lane {lane_id} s={s:.2f} of {xodr_file}"
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_lane_walk_child, args=(child, str(xodr_file), road_id, lane_id, s, method,
                                                       distance), daemon=True)
    proc.start()
    child.close()
    try:
        if not parent.poll(timeout):
            raise CarlaCallCrashed(_exit_reason(proc, what, timeout))
        status, payload = parent.recv()
    except EOFError:
        raise CarlaCallCrashed(_exit_reason(proc, what, timeout)) from None
    finally:
        parent.close()
        proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join()
    if status != "ok":
        raise CarlaCallCrashed(f"{what} failed: {payload}")
    return payload


def _exit_reason(proc: mp.process.BaseProcess, what: str, timeout: float) -> str:
    proc.join(1)
    code = proc.exitcode
    if code is None:
        proc.kill()
        return f"{what} did not finish within {timeout:.0f} s"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"{what} crashed the carla library ({name})"
    return f"{what} ended without a result (exit code {code})"
