"""``SumoDrivenWorld``: SUMO's own driver model drives the ego; the same criteria score it."""

from __future__ import annotations

import math

import libsumo
import pytest

from driving.types import VehicleControl
from driving.worlds.embedded import EmbeddedWorldConfig
from driving.worlds.embedded.reference import SumoDrivenWorld, SumoReferenceDriver
from driving.worlds.embedded.world import EGO_SUMO_ID
from leaderboard_eval.runner import RouteJob, run_episode


@pytest.fixture
def sumo_world():
    world = SumoDrivenWorld(EmbeddedWorldConfig(town="grid_tls", n_vehicles=0, n_pedestrians=0))
    yield world
    world.close()


def test_sumo_drives_the_ego_and_the_scene_follows_it(sumo_world, grid_routes) -> None:
    route = next(r for r in grid_routes if r.length > 120)
    scene = sumo_world.reset(route, seed=0)
    start = (scene.ego.x, scene.ego.y)
    for _ in range(100):  # full brake: ignored, SUMO drives
        scene = sumo_world.step(VehicleControl(brake=1.0))
    assert scene.ego.speed > 3.0
    assert math.hypot(scene.ego.x - start[0], scene.ego.y - start[1]) > 10.0
    # The ego box sits behind SUMO's front bumper, along SUMO's heading (the world's frames).
    fx, fy = libsumo.vehicle.getPosition(EGO_SUMO_ID)
    yaw = math.radians(libsumo.vehicle.getAngle(EGO_SUMO_ID) - 90.0)
    half = sumo_world.ego.params.half_length
    assert (scene.ego.x + half * math.cos(yaw), scene.ego.y + half * math.sin(yaw)) == pytest.approx((fx, -fy))
    assert scene.ego.speed == pytest.approx(libsumo.vehicle.getSpeed(EGO_SUMO_ID))
    truth = sumo_world.tick().ego
    assert (truth.x, truth.y, truth.speed) == pytest.approx((scene.ego.x, scene.ego.y, scene.ego.speed))
    assert sumo_world.scene_builder.route_offset < 1.0  # on its lane, which is the route's


def test_sumo_driver_completes_routes_without_running_lights(sumo_world, grid_routes) -> None:
    lights_passed = 0
    for i, route in enumerate(grid_routes[:3]):
        record, _ = run_episode(sumo_world, RouteJob(i, route, 0), SumoReferenceDriver, "2.0", seed=0)
        assert record.scores["score_route"] == pytest.approx(100.0), (route.id, record.status)
        assert not record.infractions["red_light"], route.id
        lights_passed += len(sumo_world.track.lights)
    assert lights_passed, "the routes cross signalised junctions"
