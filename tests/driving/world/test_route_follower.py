"""The simple RouteFollower drives planned routes to their end in the embedded world with traffic."""

from __future__ import annotations

from driving.drivers import Driver, RouteFollower


def drive(world, driver, route, seed: int, max_steps: int = 3000):
    scene = world.reset(route, seed=seed)
    driver.reset(route)
    crossed_on_red = 0
    previous = scene.traffic_light
    for _ in range(max_steps):
        scene = world.step(driver.run_step(scene))
        light = scene.traffic_light
        same = previous is not None and light is not None and light.id == previous.id
        if same and previous.state == "red" and previous.distance_to_stop_line > 0.0 >= light.distance_to_stop_line:
            crossed_on_red += 1
        previous = light
        if scene.route[-1].distance < 1.0 and abs(scene.ego.speed) < 0.05:
            break
    return scene, crossed_on_red


def test_route_follower_reaches_the_end_of_a_route_with_lights_and_traffic(make_world, grid_routes) -> None:
    world = make_world(n_vehicles=30, n_pedestrians=15)
    route = next(r for r in grid_routes if r.length > 150)
    driver = RouteFollower()
    assert isinstance(driver, Driver)
    scene, crossed_on_red = drive(world, driver, route, seed=11)
    _, s, _ = world.track.project(scene.ego.x, scene.ego.y)
    end = route.dense[-1]
    assert s > route.length - 0.5, (s, route.length, scene.timestamp)
    assert abs(scene.ego.speed) < 0.05
    assert ((scene.ego.x - end.x) ** 2 + (scene.ego.y - end.y) ** 2) ** 0.5 < 3.0
    assert crossed_on_red == 0
    assert scene.timestamp < 120.0
