"""Criteria in closed loop with the real embedded world (SUMO traffic, kinematic ego, our OBBs):
the reference RouteFollower obeys stop signs and lights; a sign-blind copy of it runs the stop;
a prop-blind copy hits a static prop on the route: a layout collision. Scored and written as results.json."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

from driving.criteria import RouteMonitor
from driving.drivers import RouteFollower
from driving.routes import generate_route_set
from driving.scene import Scene
from driving.scoring import RouteRecord
from driving.signals import load_stop_lines, route_stop_lines
from driving.towns import get_town
from driving.types import Route, VehicleControl
from driving.worlds.embedded import EmbeddedWorld, EmbeddedWorldConfig
from leaderboard_eval.results import read_records, write_results


class SignBlindFollower(RouteFollower):
    """RouteFollower that never sees traffic lights or stop signs."""

    def run_step(self, scene: Scene) -> VehicleControl:
        return super().run_step(dataclasses.replace(scene, traffic_light=None, stop_signs=[]))


class PropBlindFollower(RouteFollower):
    """RouteFollower that never sees static obstacles (the reference one brakes for them)."""

    def run_step(self, scene: Scene) -> VehicleControl:
        return super().run_step(dataclasses.replace(scene, obstacles=[]))


def _routes(town_name: str) -> list[Route]:
    route_set = generate_route_set(get_town(town_name), seed=0, count=8, min_length=120, max_length=220)
    return sorted((r for split in route_set.values() for r in split), key=lambda r: r.id)


def _episode(world: EmbeddedWorld, route: Route, driver: RouteFollower, index: int, setup=None) -> RouteRecord:
    start = time.perf_counter()
    scene = world.reset(route, seed=0)
    if setup is not None:
        setup(world)
    driver.reset(route)
    monitor = RouteMonitor(route, world.town, version="2.0", index=index)
    while not monitor.done and world.frame < 4000:
        scene = world.step(driver.run_step(scene))
        monitor.update(world.tick())
    assert monitor.done, "the route did not end within 200 s"
    return monitor.finalize(time.perf_counter() - start)


@pytest.fixture
def worlds():
    opened: list[EmbeddedWorld] = []

    def make(town: str) -> EmbeddedWorld:
        world = EmbeddedWorld(EmbeddedWorldConfig(town=town, n_vehicles=10, n_pedestrians=5))
        opened.append(world)
        return world

    yield make
    for world in opened:
        world.close()


def test_closed_loop_stop_sign_and_layout_collision(worlds, town_cache_dir, tmp_path: Path) -> None:
    stop_town = get_town("grid_stop")
    lines = load_stop_lines(stop_town)
    route = next(r for r in _routes("grid_stop") if any(
        rs.line.kind == "stop" for rs in route_stop_lines(r.dense, lines)))
    stop_id = next(rs.line.id for rs in route_stop_lines(route.dense, lines) if rs.line.kind == "stop")
    world = worlds("grid_stop")
    careful = _episode(world, route, RouteFollower(), 0)
    blind = _episode(world, route, SignBlindFollower(), 1)
    assert careful.infractions["stop_infraction"] == [] and careful.scores["score_route"] == 100.0
    assert len(blind.infractions["stop_infraction"]) == 1 and f"id={stop_id} " in blind.infractions["stop_infraction"][0]
    assert blind.scores["score_penalty"] < careful.scores["score_penalty"]

    tls_route = _routes("grid_tls")[0]
    p = tls_route.dense[30]
    prop_ids: list[int] = []
    world = worlds("grid_tls")
    crash = _episode(world, tls_route, PropBlindFollower(), 2,
                     setup=lambda w: prop_ids.append(w.spawn_static(p.x, p.y, p.yaw, 0.5, 0.5)))
    assert len(crash.infractions["collisions_layout"]) == 1
    assert f"id={prop_ids[0]} " in crash.infractions["collisions_layout"][0]
    assert crash.infractions["red_light"] == [] and crash.status in ("Completed", "Failed - Agent got blocked")

    path = tmp_path / "results.json"
    data = write_results(path, [careful, blind, crash], "2.0")
    assert data["_checkpoint"]["progress"] == [3, 3] and data["entry_status"] == "Finished"
    assert [r.to_json() for r in read_records(path)] == [r.to_json() for r in (careful, blind, crash)]
