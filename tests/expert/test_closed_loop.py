"""The expert closed loop in the real embedded world (SUMO traffic, carla.Map, the leaderboard criteria)."""

from __future__ import annotations

from pathlib import Path

from driving.actions import SPEED_LEVELS_DEFAULT
from driving.routes import generate_route_set
from driving.towns import get_town
from driving.worlds.embedded import EmbeddedWorld, EmbeddedWorldConfig
from expert import ExpertDriver
from leaderboard_eval.runner import run_routes

COLLISIONS = ("collisions_vehicle", "collisions_pedestrian", "collisions_layout")


def test_drives_a_route_with_lights_and_traffic_without_collisions(town_cache_dir: Path, tmp_path: Path) -> None:
    town = get_town("grid_tls", town_cache_dir)
    route = generate_route_set(town, seed=3, count=5, min_length=180.0, max_length=260.0)["test"][0]
    drivers: list[ExpertDriver] = []

    def make() -> ExpertDriver:
        drivers.append(ExpertDriver())
        return drivers[-1]

    config = EmbeddedWorldConfig(town="grid_tls", n_vehicles=50, n_pedestrians=25, cache_dir=str(town_cache_dir))
    results = run_routes([route], config, make, checkpoint_path=tmp_path / "results.json", progress=False)
    record = results["_checkpoint"]["records"][0]
    assert record["status"] in ("Completed", "Perfect"), record
    for kind in (*COLLISIONS, "red_light", "outside_route_lanes", "route_dev", "vehicle_blocked"):
        assert not record["infractions"][kind], (kind, record["infractions"][kind])
    assert drivers and drivers[0].last_action is not None


def test_labels_in_the_world_are_the_shared_levels_of_the_targets(town_cache_dir: Path) -> None:
    town = get_town("grid_stop", town_cache_dir)
    route = generate_route_set(town, seed=1, count=5, min_length=100.0, max_length=160.0)["test"][0]
    world = EmbeddedWorld(EmbeddedWorldConfig(town="grid_stop", n_vehicles=20, n_pedestrians=10,
                                              cache_dir=str(town_cache_dir)))
    try:
        scene = world.reset(route, seed=0)
        driver = ExpertDriver()
        driver.reset(route)
        levels = set()
        for _ in range(400):
            control = driver.run_step(scene)
            action = driver.last_action
            assert action.speed_level == SPEED_LEVELS_DEFAULT.label(action.target_speed, scene)
            assert driver.debug["kind"]
            levels.add(action.speed_level)
            scene = world.step(control)
        assert "MOVE" in levels
    finally:
        world.close()
