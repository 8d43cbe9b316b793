"""Fixtures for the criteria tests: real towns' carla.Maps, routes walked along real lanes, and
synthetic WorldTicks of an ego moving along them (fast: no simulator in the loop)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import carla
import pytest

from driving.signals import StopLine, load_stop_lines
from driving.types import ActorBox, RoadOption, Route, RouteWaypoint, VehicleControl, WorldTick

EGO_HALF_LENGTH = 2.45
EGO_HALF_WIDTH = 1.05
DT = 0.05


def _route_wp(wp: carla.Waypoint) -> RouteWaypoint:
    loc, rot = wp.transform.location, wp.transform.rotation
    return RouteWaypoint(x=loc.x, y=loc.y, z=loc.z, yaw=rot.yaw, road_option=RoadOption.LANEFOLLOW,
                         road_id=wp.road_id, lane_id=wp.lane_id, s=wp.s, is_junction=wp.is_junction)


def walk_route(cmap: carla.Map, line: StopLine, before: float, after: float, route_id: str = "0") -> Route:
    """A dense route (1 m) on ``line``'s lane from ``before`` m upstream of the stop line, through the
    junction on the link towards ``line.to_road_id`` (else the straightest), ``after`` m beyond it."""
    end = cmap.get_waypoint_xodr(line.road_id, line.lane_id, max(line.s - 1e-3, 0.0))
    back = [end]
    for _ in range(int(before)):
        prev = back[-1].previous(1.0)
        if not prev:
            break
        back.append(prev[0])
    wps = list(reversed(back))
    travelled = 0.0
    current = end
    passed_junction = False
    while travelled < after or not passed_junction:
        options = current.next(1.0)
        if not options:
            break
        if len(options) > 1:
            def score(w: carla.Waypoint, current: carla.Waypoint = current) -> float:
                probe = w
                while probe.is_junction:
                    nxt = probe.next(2.0)
                    if not nxt:
                        break
                    probe = nxt[0]
                if line.to_road_id is not None and probe.road_id == line.to_road_id:
                    return -1e9
                d = (probe.transform.rotation.yaw - current.transform.rotation.yaw + 180) % 360 - 180
                return abs(d)
            options = sorted(options, key=score)
        current = options[0]
        wps.append(current)
        if current.is_junction:
            passed_junction = True
        elif passed_junction:
            travelled += 1.0
    dense = [_route_wp(w) for w in wps]
    kps = [dense[0], dense[-1]]
    from driving.types import Keypoint

    return Route(id=route_id, town=cmap.name, keypoints=[Keypoint(k.x, k.y, k.z, k.yaw) for k in kps], dense=dense)


@dataclass
class Path:
    """Arc-length parametrisation of a dense route (the ego drives exactly on it)."""

    route: Route

    def __post_init__(self) -> None:
        self.pts = [(w.x, w.y) for w in self.route.dense]
        self.cum = [0.0]
        for (ax, ay), (bx, by) in zip(self.pts, self.pts[1:], strict=False):
            self.cum.append(self.cum[-1] + math.hypot(bx - ax, by - ay))
        self.length = self.cum[-1]

    def pose(self, d: float) -> tuple[float, float, float]:
        """Pose at arc length d; past the end the ego drives on straight (as it would)."""
        if d > self.length:
            (ax, ay), (bx, by) = self.pts[-2], self.pts[-1]
            yaw = math.atan2(by - ay, bx - ax)
            extra = d - self.length
            return bx + extra * math.cos(yaw), by + extra * math.sin(yaw), math.degrees(yaw)
        d = max(d, 0.0)
        lo, hi = 0, len(self.cum) - 1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.cum[mid] <= d:
                lo = mid
            else:
                hi = mid
        (ax, ay), (bx, by) = self.pts[lo], self.pts[hi]
        seg = self.cum[hi] - self.cum[lo]
        t = (d - self.cum[lo]) / seg if seg > 0 else 0.0
        return ax + t * (bx - ax), ay + t * (by - ay), math.degrees(math.atan2(by - ay, bx - ax))

    def distance_of(self, x: float, y: float) -> float:
        """Arc length of the dense point nearest (x, y)."""
        best = min(range(len(self.pts)), key=lambda i: math.hypot(self.pts[i][0] - x, self.pts[i][1] - y))
        return self.cum[best]


def make_tick(frame: int, x: float, y: float, yaw: float, speed: float, actors: list[ActorBox] | None = None,
              lights: dict[str, str] | None = None) -> WorldTick:
    ego = ActorBox(id=1, kind="ego", x=x, y=y, yaw=yaw, half_length=EGO_HALF_LENGTH, half_width=EGO_HALF_WIDTH,
                   speed=speed)
    return WorldTick(frame=frame, time=frame * DT, ego=ego, control=VehicleControl(), actors=actors or [],
                     light_states=lights or {})


def drive(path: Path, speed: Callable[[float, float], float], start: float = 0.0, max_time: float = 600.0,
          lateral: Callable[[float], float] | None = None, yaw_offset: Callable[[float], float] | None = None,
          actors: Callable[[float, float, float, float], list[ActorBox]] | None = None,
          lights: Callable[[float], dict[str, str]] | None = None) -> Iterator[WorldTick]:
    """Ticks of an ego following ``path``: ``speed(t, d)`` m/s; optional lateral offset (m, + = right)
    and yaw offset as functions of the distance d; ``actors(t, x, y, yaw)`` and ``lights(t)`` per tick."""
    d = start
    frame = 0
    while frame * DT <= max_time:
        t = frame * DT
        x, y, yaw = path.pose(d)
        v = speed(t, d)
        if lateral is not None:
            off = lateral(d)
            x += -math.sin(math.radians(yaw)) * off
            y += math.cos(math.radians(yaw)) * off
        if yaw_offset is not None:
            yaw += yaw_offset(d)
        yield make_tick(frame, x, y, yaw, v, actors(t, x, y, yaw) if actors else None,
                        lights(t) if lights else None)
        d += v * DT
        frame += 1


@pytest.fixture(scope="session")
def grid_lines(grid_town) -> list[StopLine]:
    return load_stop_lines(grid_town)


@pytest.fixture(scope="session")
def stop_lines(stop_town) -> list[StopLine]:
    return load_stop_lines(stop_town)


@pytest.fixture(scope="session")
def tls_line(grid_lines: list[StopLine]) -> StopLine:
    """A traffic-light stop line of a straight-through link with a long approach."""
    return next(sl for sl in grid_lines if sl.id == "A0_0") if any(sl.id == "A0_0" for sl in grid_lines) \
        else grid_lines[0]
