"""Frames of the embedded world against SUMO itself: the ego and background vehicles, lights."""

from __future__ import annotations

import math

import libsumo
import pytest

from driving.scene import wrap_degrees
from driving.types import VehicleControl
from driving.worlds.embedded.world import EGO_SUMO_ID


def _sumo_front(ego) -> tuple[float, float, float, float]:
    """SUMO's ego position relative to our front bumper: (along, across) the heading, and both points."""
    fx, fy = libsumo.vehicle.getPosition(EGO_SUMO_ID)
    yaw = math.radians(ego.yaw)
    bx, by = ego.x + ego.half_length * math.cos(yaw), ego.y + ego.half_length * math.sin(yaw)
    dx, dy = fx - bx, -fy - by  # SUMO y is flipped
    return math.cos(yaw) * dx + math.sin(yaw) * dy, -math.sin(yaw) * dx + math.cos(yaw) * dy, bx, by


def test_ego_centre_matches_sumo_front_bumper_and_angle(make_world, grid_routes) -> None:
    world = make_world(n_vehicles=10, n_pedestrians=0)
    route = grid_routes[0]
    world.reset(route, seed=1)
    assert route.dense[0].road_option.name == "LANEFOLLOW"
    for _ in range(30):  # straight along the first lane: SUMO must hold the exact front bumper
        scene = world.step(VehicleControl(throttle=0.5))
    ego = scene.ego
    along, across, _, _ = _sumo_front(ego)
    assert (along, across) == pytest.approx((0.0, 0.0), abs=0.02)
    assert wrap_degrees(libsumo.vehicle.getAngle(EGO_SUMO_ID) - (ego.yaw + 90.0)) == pytest.approx(0.0, abs=0.05)
    assert libsumo.vehicle.getLength(EGO_SUMO_ID) == pytest.approx(2 * ego.half_length)
    assert libsumo.vehicle.getRoadID(EGO_SUMO_ID) == world.track.edges[0]
    # Off the lane centre SUMO (no sublane model) keeps the ego on the lane's centre line, at the same
    # longitudinal position: traffic sees it where it is along the lane.
    for _ in range(10):
        scene = world.step(VehicleControl(throttle=0.3, steer=0.03))
    along, across, _, _ = _sumo_front(scene.ego)
    assert along == pytest.approx(0.0, abs=0.05)
    assert 0.05 < abs(across) < 1.0
    assert ego.speed > 2.0


def test_background_vehicles_match_sumo_positions(make_world, grid_routes) -> None:
    world = make_world(n_vehicles=25, n_pedestrians=10)
    world.reset(grid_routes[1], seed=2)
    for _ in range(30):
        world.step(VehicleControl(brake=1.0))
    tick = world.tick()
    vehicles = [a for a in tick.actors if a.kind == "vehicle"]
    walkers = [a for a in tick.actors if a.kind == "pedestrian"]
    assert len(vehicles) >= 20 and len(walkers) == 10
    for box in vehicles:
        vid = f"v{box.id}"
        fx, fy = libsumo.vehicle.getPosition(vid)
        angle = libsumo.vehicle.getAngle(vid)
        a = math.radians(angle)
        half = libsumo.vehicle.getLength(vid) / 2
        assert box.half_length == pytest.approx(half)
        assert box.half_width == pytest.approx(libsumo.vehicle.getWidth(vid) / 2)
        assert box.x == pytest.approx(fx - half * math.sin(a), abs=1e-6)
        assert box.y == pytest.approx(-(fy - half * math.cos(a)), abs=1e-6)
        assert wrap_degrees(box.yaw - (angle - 90.0)) == pytest.approx(0.0, abs=1e-6)
        assert box.speed == pytest.approx(libsumo.vehicle.getSpeed(vid))
    for box in walkers:
        px, py = libsumo.person.getPosition(f"p{box.id}")
        assert (box.x, box.y) == pytest.approx((px, -py))
    # The Scene reports the same actors within its radius, nearest first, in the ego frame.
    scene = world.scene
    near = {a.id: a for a in vehicles if math.hypot(a.x - scene.ego.x, a.y - scene.ego.y) <= 50.0}
    assert {a.id for a in scene.vehicles} == set(near)
    assert [a.distance for a in scene.vehicles] == sorted(a.distance for a in scene.vehicles)
    yaw = math.radians(scene.ego.yaw)
    for actor in scene.vehicles:
        dx, dy = actor.x - scene.ego.x, actor.y - scene.ego.y
        assert actor.ego_x == pytest.approx(math.cos(yaw) * dx + math.sin(yaw) * dy)
        assert actor.ego_y == pytest.approx(-math.sin(yaw) * dx + math.cos(yaw) * dy)


def test_light_state_and_stop_line_distance_match_sumo(make_world, grid_routes) -> None:
    world = make_world(n_vehicles=0, n_pedestrians=0)
    route = next(r for r in grid_routes if r.length > 120)
    scene = world.reset(route, seed=0)
    assert world.track.lights, "a grid_tls route of >120 m crosses a signalised junction"
    checked = 0
    for _ in range(600):
        light = scene.traffic_light
        if light is not None and 1.0 < light.distance_to_stop_line < 60.0:
            tls, link, sumo_distance, sumo_state = libsumo.vehicle.getNextTLS(EGO_SUMO_ID)[0]
            assert light.id == f"{tls}_{link}"
            state = libsumo.trafficlight.getRedYellowGreenState(tls)[link]
            expected = {"r": "red", "y": "yellow", "g": "green", "G": "green"}[state]
            assert light.state == expected
            assert sumo_state == state
            # SUMO measures from the front bumper along the lane to the lane's end (the stop line).
            assert light.distance_to_stop_line == pytest.approx(sumo_distance, abs=0.3)
            assert world.tick().light_states[light.id] == light.state
            checked += 1
        if light is not None and light.distance_to_stop_line < 10.0:
            break
        scene = world.step(VehicleControl(throttle=0.35))
    assert checked > 20


def test_route_lights_match_the_criterion_on_routes_that_pass_a_light_twice(make_world) -> None:
    """The Scene's lights (``track.lights``) are the ones the red-light criterion holds the ego to, in
    route order and at the same distance, also where a route loops and crosses one light twice (the
    second pass used to be placed at the first, so the Scene showed no light there)."""
    from driving.routes import generate_route_set
    from driving.signals import load_stop_lines, route_stop_lines
    from driving.towns import get_town

    world = make_world(n_vehicles=0, n_pedestrians=0)
    lines = load_stop_lines(get_town("grid_tls"))
    repeated = 0
    route_set = generate_route_set(get_town("grid_tls"), seed=0, count=5, min_length=800.0, max_length=1500.0)
    for route in (r for split in route_set.values() for r in split):
        world.reset(route, seed=0)
        expected = [(x.line.id, x.distance) for x in route_stop_lines(route.dense, lines)
                    if x.line.kind == "traffic_light"]
        ids = [i for i, _ in expected]
        repeated += len(set(ids)) < len(ids)
        assert [light.landmark_id for light in world.track.lights] == ids, route.id
        for light, (_, distance) in zip(world.track.lights, expected, strict=True):
            assert light.s == pytest.approx(distance, abs=3.0), route.id
    assert repeated, "some route of 800-1500 m in a 5x5 grid passes a light twice"


def test_light_states_cover_every_landmark_of_the_town(make_world, grid_routes) -> None:
    world = make_world(n_vehicles=0, n_pedestrians=0)
    world.reset(grid_routes[0], seed=0)
    landmarks = {lm.id for lm in world.carla_map.get_all_landmarks() if lm.type in ("1000001", "1000011")}
    states = world.tick().light_states
    assert set(states) == landmarks
    assert set(states.values()) <= {"red", "yellow", "green", "off"}
    assert "green" in states.values() and "red" in states.values()


def test_sumo_traffic_stops_behind_the_stopped_ego(make_world, grid_routes) -> None:
    """The ego moved into SUMO is a real obstacle: a SUMO car arriving behind it stops short of it."""
    world = make_world(n_vehicles=0, n_pedestrians=0)
    route = max(grid_routes, key=lambda r: r.dense[0].s)  # starts far enough into its first road
    world.reset(route, seed=0)
    for _ in range(60):
        scene = world.step(VehicleControl(throttle=0.4))
    while scene.ego.speed > 0.0:
        scene = world.step(VehicleControl(brake=1.0))
    lane = libsumo.vehicle.getLaneID(EGO_SUMO_ID)
    ego_front = libsumo.vehicle.getLanePosition(EGO_SUMO_ID)
    assert ego_front > 25.0 and not lane.startswith(":")
    libsumo.route.add("follower_route", [lane.rpartition("_")[0]])
    libsumo.vehicle.add("follower", "follower_route", departLane=lane.rpartition("_")[2], departPos="0",
                        departSpeed="10")
    libsumo.vehicle.setLaneChangeMode("follower", 0)  # no overtaking on the other lane
    gaps = []
    for _ in range(300):
        scene = world.step(VehicleControl(brake=1.0))
        if "follower" in libsumo.vehicle.getIDList():
            gaps.append(ego_front - 2 * scene.ego.half_length - libsumo.vehicle.getLanePosition("follower"))
    assert gaps and min(gaps) > 0.5  # never reached the ego's rear bumper
    assert gaps[-1] < 5.0 and libsumo.vehicle.getSpeed("follower") < 0.1  # queued right behind it
