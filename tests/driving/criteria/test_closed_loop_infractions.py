"""Collisions and a red light in closed loop with the REAL embedded world (SUMO, kinematic ego, our
OBBs, the world's own light states) scored by ``RouteMonitor``: a driver that ignores everything
hits a jaywalker, a vehicle placed on its lane, and runs a red light. Each overlap / crossing lasts
several ticks; the criteria must count it once, and the 2.0 penalty must be the table's factor."""

from __future__ import annotations

import math
import time

import pytest

from driving.criteria import RouteMonitor
from driving.geometry import overlapping_actors
from driving.scene import Scene
from driving.scoring import RouteRecord
from driving.signals import StopLine, route_stop_lines
from driving.types import Keypoint, Route, VehicleControl
from driving.worlds.embedded import EmbeddedWorld, EmbeddedWorldConfig
from tests.driving.criteria.conftest import walk_route

CRUISE = 8.0  # m/s


class Blind:
    """Steers along the route and holds ~8 m/s; sees neither actors nor lights.

    ``wait_for_red``: stand still until the governing light turns red, then go (so the ego reaches
    the stop line early in the red phase). ``pause_after_line``: once past the stop line, brake for
    that many ticks (still red), then go on: the ego crosses the junction area in two goes.
    """

    def __init__(self, wait_for_red: bool = False, pause_after_line: int = 0) -> None:
        self.wait_for_red, self.pause = wait_for_red, pause_after_line
        self.last_light: str | None = None
        self.going = not wait_for_red
        self.seen_light = False
        self.paused_ticks = 0

    def run_step(self, scene: Scene) -> VehicleControl:
        light = scene.traffic_light
        if not self.going:
            state = light.state if light else None
            self.going = self.last_light not in (None, "red") and state == "red"
            self.last_light = state
            if not self.going:
                return VehicleControl(brake=1.0)
        self.seen_light = self.seen_light or light is not None
        if self.pause and self.seen_light and light is None and self.paused_ticks < self.pause:
            self.paused_ticks += 1
            return VehicleControl(brake=1.0)
        target = scene.target
        steer = 0.0 if target is None else math.degrees(math.atan2(target.ego_y, target.ego_x)) / 40.0
        return VehicleControl(throttle=0.7 if scene.ego.speed < CRUISE else 0.0, steer=max(-1.0, min(1.0, steer)))


@pytest.fixture(scope="module")
def world(grid_town):
    world = EmbeddedWorld(EmbeddedWorldConfig(town="grid_tls", n_vehicles=0, n_pedestrians=0))
    yield world
    world.close()


@pytest.fixture(scope="module")
def lane_route(grid_map, tls_line: StopLine, grid_lines) -> Route:
    """~60 m along one lane, ending 10 m before a traffic light: no junction, no stop line."""
    dense = walk_route(grid_map, tls_line, 70, 10).dense[:60]
    assert not any(w.is_junction for w in dense) and route_stop_lines(dense, grid_lines) == []
    return Route("lane", "grid_tls", [Keypoint(dense[0].x, dense[0].y), Keypoint(dense[-1].x, dense[-1].y)], dense)


def drive(world: EmbeddedWorld, route: Route, driver: Blind, setup=None, watch=None,
          max_frames: int = 3000) -> tuple[RouteRecord, list]:
    """One episode; ``watch(tick)`` sees every tick. Returns the record and the monitor's events."""
    start = time.perf_counter()
    scene = world.reset(route, seed=0)
    if setup is not None:
        setup(world)
    monitor = RouteMonitor(route, world.town, version="2.0")
    while not monitor.done and world.frame < max_frames:
        scene = world.step(driver.run_step(scene))
        tick = world.tick()
        monitor.update(tick)
        if watch is not None:
            watch(tick)
    assert monitor.done, "the route did not end"
    return monitor.finalize(time.perf_counter() - start), list(monitor.events)


def _only(record: RouteRecord, kind: str) -> list[str]:
    others = {k: v for k, v in record.infractions.items() if v and k != kind}
    assert others == {}, others
    return record.infractions[kind]


class Overlaps:
    """Ticks on which the ego's box overlaps actor ``actor_id``'s, and the ego's speed then."""

    def __init__(self) -> None:
        self.actor_id: int | None = None
        self.speeds: list[float] = []

    def __call__(self, tick) -> None:
        if any(a.id == self.actor_id for a in overlapping_actors(tick.ego, tick.actors)):
            self.speeds.append(tick.ego.speed)


def test_jaywalker_in_front_is_one_pedestrian_collision(world, lane_route) -> None:
    overlaps = Overlaps()

    def jaywalker(w: EmbeddedWorld) -> None:
        p = lane_route.dense[35]
        a = math.radians(p.yaw)
        rx, ry = 4.0 * math.sin(a), -4.0 * math.cos(a)  # 4 m beside the lane, walking across it
        overlaps.actor_id = w.spawn_jaywalker(p.x + rx, p.y + ry, math.degrees(math.atan2(-ry, -rx)), 1.5,
                                              math.inf, trigger_distance=20.0, walk_distance=8.0)

    record, events = drive(world, lane_route, Blind(), jaywalker, overlaps)
    hits = _only(record, "collisions_pedestrian")
    assert len(hits) == 1 and f"id={overlaps.actor_id} " in hits[0]
    assert [e.actor_id for e in events if e.kind == "collisions_pedestrian"] == [overlaps.actor_id]
    assert len(overlaps.speeds) >= 3  # a real overlap over several ticks, counted once
    assert min(overlaps.speeds) > 0.9 * CRUISE  # no physics response: the kinematic ego keeps its speed
    assert record.status == "Completed" and record.scores["score_route"] == 100.0
    assert record.scores["score_penalty"] == pytest.approx(0.5)


def test_vehicle_ahead_on_the_lane_is_one_vehicle_collision(world, lane_route) -> None:
    overlaps = Overlaps()

    def parked(w: EmbeddedWorld) -> None:
        p = lane_route.dense[40]
        overlaps.actor_id = w.place_vehicle(p.x, p.y, p.yaw, 0.0)

    record, events = drive(world, lane_route, Blind(), parked, overlaps)
    hits = _only(record, "collisions_vehicle")
    assert len(hits) == 1 and f"id={overlaps.actor_id} " in hits[0] and "type=vehicle." in hits[0]
    assert [e.actor_id for e in events if e.kind == "collisions_vehicle"] == [overlaps.actor_id]
    assert len(overlaps.speeds) >= 5  # ~9 m of box through box at 8 m/s
    assert record.status == "Completed" and record.scores["score_route"] == 100.0
    assert record.scores["score_penalty"] == pytest.approx(0.6)


@pytest.fixture(scope="module")
def junction_route(grid_map, tls_line: StopLine, grid_lines) -> Route:
    """30 m before ``tls_line`` (its only stop line), through the junction, 25 m beyond."""
    route = walk_route(grid_map, tls_line, 30, 25, route_id="tls")
    assert [rs.line.id for rs in route_stop_lines(route.dense, grid_lines)] == [tls_line.id]
    return route


def test_running_a_red_light_counts_once(world, junction_route, tls_line: StopLine) -> None:
    states: dict[int, str] = {}
    speeds: dict[int, float] = {}

    def watch(tick) -> None:
        states[tick.frame] = tick.light_states[tls_line.id]
        speeds[tick.frame] = tick.ego.speed

    # Control: off at once, the light is green when the ego gets there -> no infraction.
    record, events = drive(world, junction_route, Blind(), watch=watch)
    assert record.infractions["red_light"] == [] and record.status == "Perfect"
    assert set(states.values()) == {"green"}

    # Waits for red, drives through it, stops beyond the line (still red), drives on.
    states.clear()
    speeds.clear()
    driver = Blind(wait_for_red=True, pause_after_line=30)
    record, events = drive(world, junction_route, driver, watch=watch)
    red = _only(record, "red_light")
    assert len(red) == 1 and f"light {tls_line.id} " in red[0], red
    (event,) = [e for e in events if e.kind == "red_light"]
    assert states[event.frame] == "red"
    assert driver.paused_ticks == 30 and states[max(states)] == "red"  # red for the whole crossing
    assert min(v for f, v in speeds.items() if f > event.frame) < 0.2  # stood in the junction, then went on
    assert record.status == "Completed" and record.scores["score_route"] == 100.0
    assert record.scores["score_penalty"] == pytest.approx(0.7)
