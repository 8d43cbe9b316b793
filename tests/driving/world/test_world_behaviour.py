"""Behaviour of the embedded world: determinism, densities, scripted actors, robustness, one per process."""

from __future__ import annotations

import dataclasses
import math

import pytest

from driving.types import VehicleControl
from driving.worlds.embedded import EmbeddedWorld, EmbeddedWorldConfig, EmbeddedWorldError


def controls(n: int) -> list[VehicleControl]:
    """A fixed, varied control sequence."""
    return [VehicleControl(throttle=0.6 if i % 40 < 30 else 0.0, brake=0.0 if i % 40 < 30 else 0.5,
                           steer=0.05 * math.sin(i / 15.0)) for i in range(n)]


def run(world: EmbeddedWorld, route, seed: int, n: int) -> list:
    world.reset(route, seed=seed)
    out = []
    for control in controls(n):
        scene = world.step(control)
        out.append((dataclasses.asdict(world.tick()), scene.to_dict()))
    return out


def test_same_seed_and_controls_give_identical_ticks(make_world, grid_routes) -> None:
    world = make_world(n_vehicles=40, n_pedestrians=20, jaywalkers=2)
    first = run(world, grid_routes[2], seed=7, n=150)
    second = run(world, grid_routes[2], seed=7, n=150)
    assert first == second
    other = run(world, grid_routes[2], seed=8, n=5)
    assert [t["actors"] for t, _ in other] != [t["actors"] for t, _ in first[:5]]


def test_densities_are_maintained_as_actors_leave(make_world, grid_routes) -> None:
    world = make_world(n_vehicles=40, n_pedestrians=20)
    world.reset(grid_routes[3], seed=3)
    seen: set[int] = set()
    counts = []
    for i in range(1400):  # 70 s: vehicles cross this small town in well under a minute
        world.step(VehicleControl(brake=1.0))
        if i % 100 == 99:
            tick = world.tick()
            kinds = [a.kind for a in tick.actors]
            counts.append((kinds.count("vehicle"), kinds.count("pedestrian")))
            seen.update(a.id for a in tick.actors)
            # SUMO's INVALID_DOUBLE_VALUE (-2^30) must never leak into the ground truth
            assert all(abs(a.x) < 1e5 and abs(a.y) < 1e5 and abs(a.speed) < 100 for a in tick.actors)
    # Replacements enter SUMO on the next step, and a few cars may wait for free space to be inserted.
    assert all(v >= 36 for v, _ in counts), counts
    assert all(18 <= p <= 20 for _, p in counts), counts
    assert sum(p for _, p in counts) >= 19 * len(counts)
    assert len(seen) > 40 + 20 + 10  # actors left and were replaced by new ones


def test_jaywalker_moves_and_is_reported(make_world, grid_routes) -> None:
    world = make_world(n_vehicles=0, n_pedestrians=0)
    route = grid_routes[0]
    scene = world.reset(route, seed=0)
    ego = scene.ego
    yaw = math.radians(ego.yaw)
    # 15 m ahead, 5 m to the right, walking leftwards across the road at 1.5 m/s after 0.5 s.
    x = ego.x + 15 * math.cos(yaw) - 5 * math.sin(yaw)
    y = ego.y + 15 * math.sin(yaw) + 5 * math.cos(yaw)
    jid = world.spawn_jaywalker(x, y, ego.yaw - 90.0, 1.5, start_time=0.5, walk_distance=10.0)
    static_id = world.spawn_static(ego.x + 40 * math.cos(yaw), ego.y + 40 * math.sin(yaw), ego.yaw, 1.0, 0.5)
    for _ in range(40):  # 2 s: 1.5 s of walking
        scene = world.step(VehicleControl(brake=1.0))
    tick = world.tick()
    walker = next(a for a in tick.actors if a.id == jid)
    assert walker.kind == "pedestrian" and walker.speed == 1.5
    assert math.hypot(walker.x - x, walker.y - y) == pytest.approx(1.5 * 1.5, abs=0.08)
    seen = next(p for p in scene.pedestrians if p.id == jid)
    assert seen.ego_x == pytest.approx(15.0, abs=0.2)
    assert seen.ego_y == pytest.approx(5.0 - 2.25, abs=0.1)  # moved towards the ego's lane
    static = next(a for a in tick.actors if a.id == static_id)
    assert static.kind == "static" and (static.half_length, static.half_width) == (1.0, 0.5)
    assert all(a.id != static_id for a in scene.vehicles + scene.pedestrians)
    # Drivers see the prop as an obstacle straight ahead (40 m along the ego's heading).
    obstacle = next(o for o in scene.obstacles if o.id == static_id)
    assert obstacle.kind == "static" and obstacle.speed == 0.0
    assert (obstacle.ego_x, obstacle.ego_y) == (pytest.approx(40.0, abs=0.01), pytest.approx(0.0, abs=0.01))
    for _ in range(200):  # it stops after its walk distance
        world.step(VehicleControl(brake=1.0))
    walker = next(a for a in world.tick().actors if a.id == jid)
    assert walker.speed == 0.0 and math.hypot(walker.x - x, walker.y - y) == pytest.approx(10.0)


def test_route_jaywalkers_cross_when_the_ego_approaches(make_world, grid_routes) -> None:
    world = make_world(n_vehicles=0, n_pedestrians=0, jaywalkers=3)
    scene = world.reset(max(grid_routes, key=lambda r: r.length), seed=5)
    assert len(world.scripted.jaywalkers) == 3
    assert all(not w.walking and w.walked == 0.0 for w in world.scripted.jaywalkers)
    from driving.drivers import RouteFollower

    driver = RouteFollower()
    for _ in range(600):
        scene = world.step(driver.run_step(scene))
    assert any(w.walked > 0.0 for w in world.scripted.jaywalkers)


def test_placed_vehicle_is_in_sumo_and_reported(make_world, grid_routes) -> None:
    import libsumo

    world = make_world(n_vehicles=5, n_pedestrians=0)
    scene = world.reset(grid_routes[0], seed=0)
    ahead = scene.route[12]
    vid = world.place_vehicle(ahead.x, ahead.y, scene.ego.yaw)
    scene = world.step(VehicleControl())
    assert any(a.id == vid and a.kind == "vehicle" for a in world.tick().actors)
    other = next(a for a in scene.vehicles if a.id == vid)
    assert other.ego_x == pytest.approx(ahead.ego_x, abs=0.1)
    assert f"placed{vid}" in libsumo.vehicle.getIDList()


def test_world_never_stalls(make_world, grid_routes) -> None:
    """Nothing moves: still ticks. The ego driving far off its route: SUMO keeps up, no exception."""
    world = make_world(n_vehicles=30, n_pedestrians=10)
    world.reset(grid_routes[1], seed=4)
    for _ in range(200):
        world.step(VehicleControl(brake=1.0))
    assert world.tick().time == pytest.approx(200 * 0.05)
    import libsumo

    for _ in range(400):  # circle off the road, then leave the town
        scene = world.step(VehicleControl(throttle=0.6, steer=0.4))
    for _ in range(600):
        scene = world.step(VehicleControl(throttle=1.0))
    assert scene.frame == 1200 and scene.route  # a Scene keeps coming, route projected as before
    assert world.tick().frame == 1200
    # Off its route the SUMO ego is moved anywhere (keepRoute=2) and still sits at our front bumper.
    fx, fy = libsumo.vehicle.getPosition("ego")
    yaw = math.radians(scene.ego.yaw)
    assert fx == pytest.approx(scene.ego.x + scene.ego.half_length * math.cos(yaw), abs=0.01)
    assert -fy == pytest.approx(scene.ego.y + scene.ego.half_length * math.sin(yaw), abs=0.01)


def test_a_second_world_closes_the_first(grid_routes) -> None:
    first = EmbeddedWorld(EmbeddedWorldConfig(town="grid_tls", n_vehicles=2, n_pedestrians=0))
    first.reset(grid_routes[0], seed=0)
    second = EmbeddedWorld(EmbeddedWorldConfig(town="grid_tls", n_vehicles=2, n_pedestrians=0))
    try:
        with pytest.raises(EmbeddedWorldError, match="closed"):
            first.step(VehicleControl())
        second.reset(grid_routes[0], seed=0)
        second.step(VehicleControl())
    finally:
        second.close()
        first.close()


def test_bad_config_and_unplanned_route_raise_clear_errors(make_world, grid_routes) -> None:
    with pytest.raises(EmbeddedWorldError, match="n_vehicles"):
        EmbeddedWorldConfig(n_vehicles=-1).validate()
    world = make_world()
    with pytest.raises(EmbeddedWorldError, match="reset"):
        world.step(VehicleControl())
    unplanned = dataclasses.replace(grid_routes[0], dense=[])
    with pytest.raises(EmbeddedWorldError, match="plan it first"):
        world.reset(unplanned, seed=0)
    elsewhere = dataclasses.replace(grid_routes[0], town="grid_stop")
    with pytest.raises(EmbeddedWorldError, match="grid_stop"):
        world.reset(elsewhere, seed=0)


def test_stop_sign_is_reported_and_cleared_after_stopping(make_world, stop_routes) -> None:
    world = make_world(town="grid_stop", n_vehicles=0, n_pedestrians=0)
    for route in stop_routes:  # the first route that passes a stop-controlled approach
        scene = world.reset(route, seed=0)
        if world.track.stops and world.track.stops[0].s > 20.0:
            break
    else:
        pytest.fail("no grid_stop route passes a stop sign")
    approaches = {a.id for a in world.town.stop_approaches}
    from driving.drivers import RouteFollower

    driver = RouteFollower()
    first = world.track.stops[0].landmark_id
    reported, cleared = [], False
    for _ in range(1500):
        signs = {s.id: s for s in scene.stop_signs}
        if first in signs:
            reported.append(signs[first].distance_to_stop_line)
            cleared = cleared or signs[first].cleared
        if cleared:
            break
        scene = world.step(driver.run_step(scene))
    assert first in approaches
    assert reported and max(reported) > 10.0
    assert cleared and 0.0 <= reported[-1] <= 5.0 and abs(scene.ego.speed) < 0.1


@pytest.mark.parametrize("stop_margin,counted", [(1.0, True), (4.0, False)])
def test_stop_sign_cleared_exactly_when_the_criterion_counts_the_stop(make_world, stop_routes,
                                                                      stop_margin: float, counted: bool) -> None:
    """The Scene's ``cleared`` agrees with the 2.x RunningStopTest: a stop 1 m before the line clears the
    sign and passes; a stop 4 m short of it (e.g. for a crossing car) does neither."""
    from driving.criteria import RouteMonitor
    from driving.drivers import RouteFollower
    from driving.signals import load_stop_lines

    world = make_world(town="grid_stop", n_vehicles=0, n_pedestrians=0)
    route = next(r for r in stop_routes if (world.reset(r, seed=0), world.track.stops)[1]
                 and world.track.stops[0].s > 20.0)
    scene = world.reset(route, seed=0)
    monitor = RouteMonitor(route, world.town, version="2.0", stop_lines=load_stop_lines(world.town))
    first = world.track.stops[0].landmark_id
    driver = RouteFollower(stop_margin=stop_margin)
    events, stopped_for, sign = [], 0, None
    for _ in range(1500):  # drive up to the sign until it clears or the car has stood there 2 s
        scene = world.step(driver.run_step(scene))
        events += monitor.update(world.tick())
        stopped_for = stopped_for + 1 if abs(scene.ego.speed) < 0.05 else 0
        sign = next((s for s in scene.stop_signs if s.id == first), None)
        if sign is not None and (sign.cleared or stopped_for > 40):
            break
    assert sign is not None and abs(scene.ego.speed) < 0.1
    assert sign.distance_to_stop_line == pytest.approx(stop_margin, abs=0.6)
    assert sign.cleared is counted
    for _ in range(200):  # then drive through the junction regardless
        scene = world.step(VehicleControl(throttle=0.5))
        events += monitor.update(world.tick())
    ran = [e for e in events if e.kind == "stop_infraction"]
    assert (not ran) is counted, [e.message for e in ran]


def test_jammed_vehicles_are_removed_and_replaced(make_world, grid_routes) -> None:
    import libsumo

    world = make_world(n_vehicles=30, n_pedestrians=0, jam_timeout_s=5.0)
    scene = world.reset(grid_routes[2], seed=6)
    ahead = scene.route[30]
    blocker = world.place_vehicle(ahead.x, ahead.y, scene.ego.yaw)  # parked in the ego's lane
    for _ in range(600):
        world.step(VehicleControl(brake=1.0))
    assert world.traffic.removed_jammed > 0
    waiting = [libsumo.vehicle.getWaitingTime(v) for v in libsumo.vehicle.getIDList()
               if v.startswith("v")]
    assert waiting and max(waiting) <= 5.0 + 1.0 + 1e-6
    kinds = [a.kind for a in world.tick().actors]
    assert kinds.count("vehicle") >= 27 + 1
    assert any(a.id == blocker for a in world.tick().actors)
    assert f"placed{blocker}" in libsumo.vehicle.getIDList()


def _hold_walkers(world, spots: dict[str, tuple[float, float]], seconds: float, ego_pose=None) -> list[set]:
    """Add a walker per ``spots`` entry (CARLA x, y), hold each there while the ego brakes (kept at
    ``ego_pose`` (x, y, yaw) if given) for ``seconds``; the SUMO walker ids alive after each step."""
    import libsumo

    from driving.worlds.embedded.traffic import ActorRow

    edge = next(ed for ed in libsumo.edge.getIDList() if not ed.startswith(":"))
    for n, pid in enumerate(spots):
        libsumo.person.add(pid, edge, 1.0, depart=-3)
        libsumo.person.appendWaitingStage(pid, 100.0)
        world.traffic.rows[pid] = ActorRow(900 + n, 0.25, 0.3, False)
    seen = []
    for _ in range(int(round(seconds / world.dt))):
        for pid, (x, y) in spots.items():
            if pid in libsumo.person.getIDList():
                libsumo.person.moveToXY(pid, "", x, -y, keepRoute=2)  # held in place (SUMO frame)
        if ego_pose is not None:
            world.ego.reset(*ego_pose)
        world.step(VehicleControl(brake=1.0))
        seen.append(set(libsumo.person.getIDList()))
    return seen


def test_a_walker_standing_against_the_standing_ego_is_removed(make_world, grid_routes) -> None:
    """Stand-off breaker: SUMO walkers walk into a car standing on their crossing, or stop on the
    crossing in front of it, and stay there; one standing against the standing ego's box and one in its
    lane 5 m ahead are removed after ``standoff_timeout_s``, one on the kerb 3 m to the side is not."""
    world = make_world(n_vehicles=0, n_pedestrians=0, standoff_timeout_s=2.0)
    world.reset(grid_routes[0], seed=0)
    world.step(VehicleControl(brake=1.0))
    e, half_width = world.ego, world.config.ego.half_width
    ahead = world.config.ego.half_length + 5.0
    spots = {pid: (e.x + math.cos(e.yaw) * along - math.sin(e.yaw) * lateral,
                   e.y + math.sin(e.yaw) * along + math.cos(e.yaw) * lateral)
             for pid, along, lateral in (("against", 0.0, half_width + 0.5), ("ahead", ahead, 0.5),
                                         ("kerb", 0.0, half_width + 3.0))}
    seen = _hold_walkers(world, spots, 6.0)  # the ego braking throughout
    for pid in ("against", "ahead"):
        assert pid in seen[30] and pid not in seen[-1]  # there after 1.5 s, gone by 6 s
    assert all("kerb" in s for s in seen)
    assert world.traffic.removed_standoffs == 2


def test_the_stand_off_breaker_follows_the_route_round_a_turn(make_world, grid_routes) -> None:
    """A walker standing on the route round the turn ahead is in the ego's path; one on the straight
    line past the turn's start, off the route, is not."""
    from driving.scene import wrap_degrees

    world = make_world(n_vehicles=0, n_pedestrians=0, standoff_timeout_s=2.0)

    def turns(r, i: int) -> bool:  # a full turn within the 14 m of route after point i
        return abs(wrap_degrees(r.dense[i + 14].yaw - r.dense[i].yaw)) > 80

    route = next(r for r in grid_routes if any(turns(r, i) for i in range(10, len(r.dense) - 14)))
    turn = next(i for i in range(10, len(route.dense) - 14) if turns(route, i))
    # the ego stands 2 m before the turn starts to bend
    k = next(i for i in range(turn, turn + 14) if abs(wrap_degrees(route.dense[i + 1].yaw - route.dense[i].yaw)) > 3) - 2
    world.reset(route, seed=0)
    here = route.dense[k]
    world.ego.reset(here.x, here.y, here.yaw)
    world.step(VehicleControl(brake=1.0))
    reach = k + int(world.config.ego.half_length) + 9  # ~9 m past the front bumper, round the turn
    on_route = route.dense[reach]
    yaw = math.radians(here.yaw)
    straight_on = (here.x + math.cos(yaw) * (reach - k), here.y + math.sin(yaw) * (reach - k))
    assert math.hypot(straight_on[0] - on_route.x, straight_on[1] - on_route.y) > 3.0
    spots = {"round_the_turn": (on_route.x, on_route.y), "straight_on": straight_on}
    alive = _hold_walkers(world, spots, 6.0, ego_pose=(here.x, here.y, here.yaw))[-1]
    assert "round_the_turn" not in alive and "straight_on" in alive


def test_a_car_standing_in_the_junction_the_ego_stands_in_is_removed(make_world, grid_routes) -> None:
    """Stand-off breaker: a SUMO car stopped inside the junction where the ego stands (each waiting for
    the other: SUMO does not coordinate with the externally moved ego) is removed after
    ``standoff_timeout_s``; a car stopped on a road outside it is left to the 60 s jam breaker."""
    import libsumo

    from driving.worlds.embedded.traffic import ActorRow
    from driving.worlds.embedded.world import EGO_SUMO_ID

    world = make_world(n_vehicles=0, n_pedestrians=0, standoff_timeout_s=2.0)
    route = next(r for r in grid_routes if any(w.is_junction for w in r.dense[10:]))
    world.reset(route, seed=0)
    k = next(i for i, w in enumerate(route.dense) if i > 10 and w.is_junction)
    inside = route.dense[k]
    world.ego.reset(inside.x, inside.y, inside.yaw)  # standing in the junction
    world.step(VehicleControl(brake=1.0))
    assert libsumo.vehicle.getLaneID(EGO_SUMO_ID).startswith(":")
    far = route.dense[max(k - 10, 0)]
    cars = {"in_junction": (inside.x + 0.5, inside.y + 0.5, inside.yaw), "on_road": (far.x, far.y, far.yaw)}
    edges = world.track.edges
    libsumo.route.add("standoff_route", edges[:2])
    for n, (vid, (x, y, yaw)) in enumerate(cars.items()):
        libsumo.vehicle.add(vid, "standoff_route", depart="now")
        libsumo.vehicle.moveToXY(vid, "", -1, x, -y, yaw + 90.0, keepRoute=2)
        world.traffic.rows[vid] = ActorRow(950 + n, 2.3, 0.9, True)
    libsumo.vehicle.moveToXY("on_road", "", -1, far.x, -far.y, far.yaw + 90.0, keepRoute=2)
    gone = {}
    for step in range(120):  # 6 s
        for vid in cars:
            if vid in libsumo.vehicle.getIDList():
                libsumo.vehicle.setSpeed(vid, 0.0)
        world.ego.reset(inside.x, inside.y, inside.yaw)
        world.step(VehicleControl(brake=1.0))
        for vid in cars:
            if vid not in libsumo.vehicle.getIDList():
                gone.setdefault(vid, step)
    assert "in_junction" in gone and gone["in_junction"] > 40, gone  # after 2 s standing, not before
    assert "on_road" not in gone
    assert world.traffic.removed_standoffs == 1


def test_ego_back_on_its_route_follows_it_in_sumo_again(make_world, grid_routes) -> None:
    import libsumo

    world = make_world(n_vehicles=5, n_pedestrians=0)
    route = next(r for r in grid_routes if r.length > 120)
    world.reset(route, seed=4)
    for _ in range(100):  # swerve off the route
        world.step(VehicleControl(throttle=0.5, steer=0.5))
    assert world.scene_builder.route_offset > 5.0
    point = route.dense[40]
    world.ego.reset(point.x, point.y, point.yaw, speed=5.0)  # back on the route (as if it drove back)
    for _ in range(3):
        scene = world.step(VehicleControl(throttle=0.3))
    assert libsumo.vehicle.getRoadID("ego") in world.track.edges
    assert list(libsumo.vehicle.getRoute("ego")) == world.track.edges[world.track.edges.index(
        libsumo.vehicle.getRoadID("ego")):]
    if scene.traffic_light is not None:
        tls, link, distance, _ = libsumo.vehicle.getNextTLS("ego")[0]
        assert scene.traffic_light.id == f"{tls}_{link}"
        assert scene.traffic_light.distance_to_stop_line == pytest.approx(distance, abs=0.3)


def test_route_follower_stops_short_of_a_static_obstacle(make_world, grid_routes) -> None:
    """A prop on the route is in the Scene's obstacles, so the simple driver stops before touching it."""
    from driving.drivers import RouteFollower

    world = make_world(n_vehicles=0, n_pedestrians=0)
    route = grid_routes[0]
    world.reset(route, seed=0)
    p = route.dense[30]
    prop = world.spawn_static(p.x, p.y, p.yaw, 0.5, 0.5)
    driver = RouteFollower()
    driver.reset(route)
    scene = world.step(VehicleControl())
    for _ in range(400):  # 20 s: enough to reach the prop 30 m ahead at cruise speed
        scene = world.step(driver.run_step(scene))
    seen = next(o for o in scene.obstacles if o.id == prop)
    gap = seen.ego_x - scene.ego.half_length - seen.half_length
    assert 0.0 < gap < 10.0 and abs(scene.ego.speed) < 0.1
