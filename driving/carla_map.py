"""Loading ``carla.Map`` offline and keeping the carla library's crashing calls away from the caller.

``carla.Map(name, xodr_text)`` needs no simulator server. Two carla 0.9.16 calls are known to kill or
break the process on generated maps (see shared/reference/embedded-world.md):
``Waypoint.previous_until_lane_start()`` segfaults on a lane without a predecessor and
``Waypoint.next_until_lane_end()`` throws on ramp lanes. In-process code uses the pure-Python walks
below instead; when the native call itself is wanted, ``isolated_lane_walk`` runs it in a child
process so a crash becomes a ``CarlaCallCrashed`` exception.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

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


_CHILD = r"""
import json, sys
from pathlib import Path
import carla
a = json.loads(sys.argv[1])
cmap = carla.Map(Path(a["xodr"]).stem, Path(a["xodr"]).read_text())
wp = cmap.get_waypoint_xodr(a["road"], a["lane"], a["s"])
if wp is None:
    print(json.dumps({"error": "no waypoint at road %d lane %d s=%.2f" % (a["road"], a["lane"], a["s"])}))
    sys.exit(0)
try:
    wps = getattr(wp, a["method"])(a["distance"])
except Exception as exc:
    print(json.dumps({"error": "%s: %s" % (type(exc).__name__, exc)}))
    sys.exit(0)
print(json.dumps({"points": [[w.road_id, w.lane_id, w.s, w.transform.location.x, w.transform.location.y,
                              w.transform.rotation.yaw] for w in wps]}))
"""


def isolated_lane_walk(xodr_file: str | Path, road_id: int, lane_id: int, s: float,
                       method: str = "next_until_lane_end", distance: float = 1.0,
                       timeout: float = 60.0) -> list[LanePoint]:
    """Run a native lane walk (``next_until_lane_end`` / ``previous_until_lane_start``) in a child process.

    Returns the walk's points; raises ``CarlaCallCrashed`` naming the call if the child segfaults,
    raises, or exceeds ``timeout``.
    """
    if method not in ("next_until_lane_end", "previous_until_lane_start"):
        raise ValueError(f"method must be next_until_lane_end or previous_until_lane_start, got {method!r}")
    what = f"{method}({distance}) at road {road_id} lane {lane_id} s={s:.2f} of {xodr_file}"
    args = json.dumps({"xodr": str(xodr_file), "road": int(road_id), "lane": int(lane_id), "s": float(s),
                       "method": method, "distance": float(distance)})
    try:
        proc = subprocess.run([sys.executable, "-c", _CHILD, args], capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise CarlaCallCrashed(f"{what} did not finish within {timeout:.0f} s") from None
    if proc.returncode != 0:
        raise CarlaCallCrashed(_exit_reason(proc.returncode, what, proc.stderr))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise CarlaCallCrashed(f"{what} ended without a result")
    result = json.loads(lines[-1])
    if "error" in result:
        raise CarlaCallCrashed(f"{what} failed: {result['error']}")
    return [LanePoint(int(r), int(ln), float(s_), float(x), float(y), float(yaw))
            for r, ln, s_, x, y, yaw in result["points"]]


def _exit_reason(code: int, what: str, stderr: str) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"{what} crashed the carla library ({name})"
    tail = " | ".join(stderr.strip().splitlines()[-2:])
    return f"{what} failed in its child process (exit code {code}): {tail}"
