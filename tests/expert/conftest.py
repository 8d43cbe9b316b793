"""Hand-built Scenes for the expert's unit tests, and a tiny closed loop around the real ego model.

``Track`` is a route polyline in the world frame with signals at arc lengths; ``Track.scene`` builds
the Scene a world would give for an ego pose (route points ahead in both frames, the light, stop
signs, actors in the ego frame). ``run_closed_loop`` drives ``ExpertDriver`` with the embedded world's
own kinematic ego (``driving.worlds.embedded.ego.EgoVehicle``) through such a Track, actors moving
at constant velocity, and records what happened.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest

from driving.scene import Actor, EgoState, RoutePoint, Scene, StopSign, TrafficLight, world_to_ego
from driving.worlds.embedded.ego import EgoParams, EgoVehicle
from expert import ExpertDriver

HALF_LENGTH = EgoParams().half_length
HALF_WIDTH = EgoParams().half_width


def straight(length: float = 150.0) -> np.ndarray:
    return np.array([(x, 0.0) for x in np.arange(0.0, length + 0.5, 1.0)])


def left_turn(approach: float = 40.0, radius: float = 12.0, exit_length: float = 60.0) -> np.ndarray:
    """Along +x, then a quarter circle to the left (towards -y in CARLA's left-handed frame), then -y."""
    pts = [(x, 0.0) for x in np.arange(0.0, approach, 1.0)]
    for a in np.arange(0.0, math.pi / 2, 1.0 / radius):
        pts.append((approach + radius * math.sin(a), -radius + radius * math.cos(a)))
    pts += [(approach + radius, -radius - d) for d in np.arange(0.0, exit_length, 1.0)]
    return np.array(pts)


@dataclass
class MovingActor:
    id: int
    kind: str
    x: float
    y: float
    yaw: float  # degrees, world frame
    speed: float
    half_length: float = 2.3
    half_width: float = 0.95

    def step(self, dt: float) -> None:
        self.x += self.speed * math.cos(math.radians(self.yaw)) * dt
        self.y += self.speed * math.sin(math.radians(self.yaw)) * dt


@dataclass
class Track:
    """A route polyline (world frame) with its signals and junction span (arc lengths, m)."""

    xy: np.ndarray
    options: list[str] | None = None  # RoadOption name per point (LANEFOLLOW if None)
    light_s: float | None = None  # stop line of a light
    light_state: Callable[[float], str] = lambda t: "red"
    stop_s: float | None = None  # stop line of a stop sign
    speed_limit: float = 13.89
    cleared: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        seg = np.diff(self.xy, axis=0)
        self.s = np.concatenate([[0.0], np.cumsum(np.hypot(seg[:, 0], seg[:, 1]))])
        if self.options is None:
            self.options = ["LANEFOLLOW"] * len(self.xy)

    def project(self, x: float, y: float) -> tuple[int, float, float, float]:
        """(segment, arc length, projected x, projected y) of the nearest point on the polyline."""
        p0, d = self.xy[:-1], np.diff(self.xy, axis=0)
        n = np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-9)
        u = d / n[:, None]
        t = np.clip((x - p0[:, 0]) * u[:, 0] + (y - p0[:, 1]) * u[:, 1], 0.0, n)
        px, py = p0[:, 0] + t * u[:, 0], p0[:, 1] + t * u[:, 1]
        k = int(np.argmin((px - x) ** 2 + (py - y) ** 2))
        return k, float(self.s[k] + t[k]), float(px[k]), float(py[k])

    def scene(self, ego: EgoState, actors: list[MovingActor] = (), t: float = 0.0, frame: int = 0) -> Scene:
        k, s, px, py = self.project(ego.x, ego.y)
        pts = [(px, py, s, self.options[k])] + [
            (float(x), float(y), float(si), opt) for (x, y), si, opt in
            zip(self.xy[k + 1:], self.s[k + 1:], self.options[k + 1:], strict=True) if si - s <= 100.0]
        route = []
        for x, y, si, opt in pts:
            ex, ey = world_to_ego(ego.x, ego.y, ego.yaw, x, y)
            route.append(RoutePoint(x, y, ex, ey, si - s, opt))
        target = next((p for p in route if p.distance >= 4.0), None)
        front = s + ego.half_length
        light = None
        if self.light_s is not None and self.light_s - front > -2 * ego.half_length:
            light = TrafficLight("tls_0", self.light_state(t), self.light_s - front)
        signs = []
        if self.stop_s is not None and -2 * ego.half_length <= self.stop_s - front <= 50.0:
            d = self.stop_s - front
            if d <= 5.0 and abs(ego.speed) < 0.1:
                self.cleared.add("stop_0")
            signs.append(StopSign("stop_0", d, "stop_0" in self.cleared))
        junction = [i for i, o in enumerate(self.options) if o in ("LEFT", "RIGHT", "STRAIGHT")]
        in_junction = k in junction
        ahead = [self.s[i] - s for i in junction if self.s[i] >= s]
        to_junction = 0.0 if in_junction else (min(ahead) if ahead else None)
        by_kind: dict[str, list[Actor]] = {"vehicle": [], "pedestrian": [], "static": []}
        for a in actors:
            ex, ey = world_to_ego(ego.x, ego.y, ego.yaw, a.x, a.y)
            rel = (a.yaw - ego.yaw + 180.0) % 360.0 - 180.0
            dist = math.hypot(a.x - ego.x, a.y - ego.y)
            if dist <= 50.0:
                by_kind[a.kind].append(Actor(a.id, a.kind, a.x, a.y, a.yaw, ex, ey, rel, a.speed, a.half_length,
                                             a.half_width, dist))
        return Scene(frame=frame, timestamp=t, ego=ego, route=route, target=target, vehicles=by_kind["vehicle"],
                     pedestrians=by_kind["pedestrian"], traffic_light=light, stop_signs=signs,
                     speed_limit=self.speed_limit, in_junction=in_junction, distance_to_junction=to_junction,
                     obstacles=by_kind["static"])


def ego_state(x: float = 0.0, y: float = 0.0, yaw: float = 0.0, speed: float = 0.0) -> EgoState:
    return EgoState(x, y, yaw, speed, 0.0, HALF_LENGTH, HALF_WIDTH, 0.0)


@dataclass
class LoopLog:
    scenes: list[Scene] = field(default_factory=list)
    actions: list = field(default_factory=list)
    min_gap: dict[int, float] = field(default_factory=dict)  # actor id -> closest centre distance

    def speeds(self) -> np.ndarray:
        return np.array([s.ego.speed for s in self.scenes])


def run_closed_loop(track: Track, driver: ExpertDriver, seconds: float, speed: float = 0.0,
                    actors: list[MovingActor] = (), start_s: float = 0.0,
                    until: Callable[[Scene], bool] | None = None) -> LoopLog:
    """Drive ``track`` from arc length ``start_s`` at ``speed`` for ``seconds`` (20 Hz) with the real ego model."""
    from driving.types import Keypoint, Route

    dt = 0.05
    i = int(np.searchsorted(track.s, start_s))
    heading = math.degrees(math.atan2(*(track.xy[min(i + 1, len(track.xy) - 1)] - track.xy[i])[::-1]))
    car = EgoVehicle()
    car.reset(float(track.xy[i, 0]), float(track.xy[i, 1]), heading, speed)
    driver.reset(Route("test", "none", [Keypoint(float(track.xy[0, 0]), float(track.xy[0, 1]))]))
    log = LoopLog()
    for frame in range(int(seconds / dt)):
        ego = EgoState(car.x, car.y, car.yaw_deg, car.speed, car.acceleration, HALF_LENGTH, HALF_WIDTH,
                       car.steer_command)
        scene = track.scene(ego, list(actors), frame * dt, frame)
        log.scenes.append(scene)
        if until is not None and until(scene):
            break
        control = driver.run_step(scene)
        log.actions.append(driver.last_action)
        car.step(control.clipped(), dt)
        for a in actors:
            a.step(dt)
            log.min_gap[a.id] = min(log.min_gap.get(a.id, math.inf), math.hypot(a.x - car.x, a.y - car.y))
    return log


@pytest.fixture
def expert() -> ExpertDriver:
    return ExpertDriver()


