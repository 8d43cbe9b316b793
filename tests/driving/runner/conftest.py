"""Runner fixtures: short real routes on the built grid town, small traffic, test drivers."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from driving.types import Keypoint, RoadOption, Route, RouteWaypoint, VehicleControl
from driving.worlds.embedded import EmbeddedWorldConfig

REPO = Path(__file__).resolve().parents[3]


def cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """``python -m leaderboard_eval`` as a user runs it."""
    return subprocess.run([sys.executable, "-m", "leaderboard_eval", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "PYTHONPATH": str(REPO)})


def assert_one_line_error(out: subprocess.CompletedProcess, *needles: str) -> None:
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert lines[0].startswith("leaderboard_eval: error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]


def lane_route(grid_map, route_id: str, start_index: int, length_m: int = 45) -> Route:
    """A dense route following one lane (first branch at junctions) from a non-junction waypoint."""
    starts = [w for w in grid_map.generate_waypoints(4.0) if not w.is_junction and w.s > 5.0]
    wp = starts[start_index % len(starts)]
    dense = []
    for _ in range(length_m):
        t = wp.transform
        dense.append(RouteWaypoint(t.location.x, t.location.y, 0.0, t.rotation.yaw, RoadOption.LANEFOLLOW,
                                   wp.road_id, wp.lane_id, wp.s, wp.is_junction))
        wp = wp.next(1.0)[0]
    return Route(route_id, "grid_tls", [Keypoint(dense[0].x, dense[0].y), Keypoint(dense[-1].x, dense[-1].y)],
                 dense)


@pytest.fixture(scope="session")
def short_routes(grid_map) -> list[Route]:
    return [lane_route(grid_map, str(i), 7 + 31 * i) for i in range(3)]


@pytest.fixture
def world_config(grid_town) -> EmbeddedWorldConfig:
    return EmbeddedWorldConfig(town="grid_tls", n_vehicles=8, n_pedestrians=4)


class Pursuit:
    """A minimal pure-pursuit driver on scene.target, cruising at 6 m/s."""

    def reset(self, route: Route) -> None:
        self.route = route

    def run_step(self, scene) -> VehicleControl:
        target = scene.target
        if target is None:  # the last 4 m: roll on past the end so the route counts as completed
            return VehicleControl(throttle=0.3)
        steer = math.degrees(math.atan2(target.ego_y, target.ego_x)) / 40.0
        return VehicleControl(throttle=0.6 if scene.ego.speed < 6.0 else 0.0, steer=max(-1.0, min(1.0, steer)))


class Parked:
    """Never moves."""

    def reset(self, route: Route) -> None:
        pass

    def run_step(self, scene) -> VehicleControl:
        return VehicleControl(brake=1.0)


class CrashOn(Pursuit):
    """Raises in run_step on the routes named."""

    def __init__(self, ids: set[str], after_steps: int = 5, exc: type[BaseException] = RuntimeError) -> None:
        self.ids, self.after, self.exc, self.steps = ids, after_steps, exc, 0

    def run_step(self, scene) -> VehicleControl:
        self.steps += 1
        if self.route.id in self.ids and self.steps > self.after:
            raise self.exc("driver bug on purpose")
        return super().run_step(scene)


class HangOn(Pursuit):
    """Spins forever inside run_step on the routes named (a stuck driver)."""

    def __init__(self, ids: set[str]) -> None:
        self.ids = ids

    def run_step(self, scene) -> VehicleControl:
        while self.route.id in self.ids:
            time.sleep(0.01)
        return super().run_step(scene)
