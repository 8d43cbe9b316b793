"""SUMO's walkers and cars stop short of the ego (``driving/worlds/embedded/yielding.py``).

Each world scenario runs with ``yield_to_ego`` on and off: off, the SUMO actor runs into the ego
(SUMO does not see it there), so the test shows the behaviour is the yielding's doing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from driving.geometry import obb_overlap
from driving.types import VehicleControl
from driving.worlds.embedded.yielding import ARC_SAMPLES, CLEARANCE, on_collision_course, swept_boxes

EGO = (0.0, 0.0, 0.0, 2.4, 1.05)  # a standing ego at the origin heading +x (x, y, yaw_deg, half sizes)


def test_collision_course_is_the_way_straight_ahead() -> None:
    # walkers (fronts) 1 m off the ego's right side: walking at it / away from it / along it
    fx, fy = np.array([0.0, 0.0, 0.0]), np.array([2.0, 2.0, 2.0])
    course = on_collision_course(EGO, fx, fy, np.array([-90.0, 90.0, 0.0]), np.full(3, 0.3), np.full(3, 0.9))
    assert course.tolist() == [True, False, False]
    # ... and one that would stop just short of the clearance is not held
    assert not on_collision_course(EGO, fx[:1], np.array([1.05 + CLEARANCE + 0.95]), np.array([-90.0]),
                                   np.array([0.3]), np.array([0.9]))[0]
    # a car 6 m ahead coming head-on, its lane overlapping the ego's left edge by 0.2 m: held when
    # its braking reach gets there, not while it is farther
    front = (np.array([6.0, 6.0]), np.array([-1.05 - 0.9 + 0.2] * 2))
    course = on_collision_course(EGO, *front, np.array([180.0, 180.0]), np.full(2, 0.9), np.array([4.0, 3.0]))
    assert course.tolist() == [True, False]
    # the same car one lane over (0.3 m clear, more than the clearance) passes
    assert not on_collision_course(EGO, front[0][:1], np.array([-1.05 - 0.9 - 0.3]), np.array([180.0]),
                                   np.array([0.9]), np.array([10.0]))[0]


def test_a_turning_cars_body_sweeps_an_arc() -> None:
    """A car 7 m ahead of the ego and 5 m to its right, crossing to the left and turning left (towards
    the ego's front) at 9 deg/m: its way straight on passes in front of the ego, its body on the arc
    comes within the clearance of the ego's front. Boxes are centred on the arc, the last one
    ``reach`` metres along it."""
    where = (np.array([7.0]), np.array([5.0]), np.array([-90.0]))
    size = (np.array([2.35]), np.array([0.9]), np.array([8.0]))
    ego = (EGO[0], EGO[1], EGO[2], EGO[3] + CLEARANCE, EGO[4] + CLEARANCE)
    straight = swept_boxes(*where, np.array([0.0]), *size)
    turning = swept_boxes(*where, np.array([-9.0]), *size)
    assert straight.shape == (1, ARC_SAMPLES, 5)
    assert straight[0, -1, :3] == pytest.approx([7.0, -3.0, -90.0])
    assert turning[0, -1, 2] == pytest.approx(-90.0 - 72.0)
    assert not obb_overlap(ego, straight[0]).any()
    assert obb_overlap(ego, turning[0]).any()


def _straight_lane(allowed: str, min_length: float) -> tuple[str, int, list[tuple[float, float]]]:
    """A straight lane of a normal edge that ``allowed`` may use: (edge, lane index, SUMO shape)."""
    import libsumo

    for edge in sorted(libsumo.edge.getIDList()):
        if edge.startswith(":"):
            continue
        for i in range(libsumo.edge.getLaneNumber(edge)):
            lane = f"{edge}_{i}"
            shape = libsumo.lane.getShape(lane)
            if (allowed in libsumo.lane.getAllowed(lane) and len(shape) == 2
                    and libsumo.lane.getLength(lane) > min_length):
                return edge, i, list(shape)
    raise AssertionError(f"no straight {allowed} lane over {min_length} m")


def _along(shape, s: float, lateral_left: float = 0.0) -> tuple[float, float, float]:
    """CARLA (x, y, yaw_deg of the lane) at ``s`` m along a 2-point SUMO lane, ``lateral_left`` m to
    its left (SUMO's frame is CARLA's with y flipped)."""
    (x0, y0), (x1, y1) = shape
    length = math.hypot(x1 - x0, y1 - y0)
    ux, uy = (x1 - x0) / length, (y1 - y0) / length
    x, y = x0 + ux * s - uy * lateral_left, y0 + uy * s + ux * lateral_left
    return x, -y, math.degrees(math.atan2(-uy, ux))


def _ego_box(world) -> np.ndarray:
    e, p = world.ego, world.config.ego
    return np.array([e.x, e.y, e.yaw_deg, p.half_length, p.half_width])


@pytest.mark.parametrize(("yielding", "ego_speed"), [(True, 0.0), (True, 1.5), (False, 0.0)])
def test_a_walker_stops_short_of_the_ego(make_world, grid_routes, yielding: bool, ego_speed: float) -> None:
    """A SUMO walker walking along a sidewalk the ego stands (or creeps) across stops short of it (and
    walks on once the ego has driven off); without the yielding it walks into the car."""
    import libsumo

    from driving.worlds.embedded.traffic import ActorRow

    world = make_world(n_vehicles=0, n_pedestrians=0, yield_to_ego=yielding, standoff_timeout_s=100.0)
    world.reset(grid_routes[0], seed=0)
    edge, _, shape = _straight_lane("pedestrian", 40.0)
    pose = _along(shape, 25.0)
    libsumo.person.add("w", edge, 5.0, depart=-3)
    libsumo.person.appendWalkingStage("w", [edge], arrivalPos=libsumo.lane.getLength(f"{edge}_0") - 1.0)
    world.traffic.rows["w"] = ActorRow(900, 0.25, 0.3, False)
    touched, gaps = False, []
    for _ in range(400):  # 20 s: the walker covers the 20 m to the ego at ~1.3 m/s
        world.ego.reset(*pose, speed=ego_speed)
        world.step(VehicleControl(brake=1.0 if ego_speed == 0.0 else 0.0))
        walker = next(a for a in world.tick().actors if a.id == 900)
        box = np.array([walker.x, walker.y, walker.yaw, walker.half_length, walker.half_width])
        touched |= bool(obb_overlap(_ego_box(world), box)[0])
        gaps.append(math.hypot(walker.x - pose[0], walker.y - pose[1]))
    if not yielding:
        assert touched  # SUMO's walker walks into the standing car
        return
    assert not touched and world.yielding.holds >= 1
    assert min(gaps) < world.config.ego.half_length + 1.0  # it did walk up to the car
    assert libsumo.person.getSpeed("w") < 0.1
    assert abs(world.ego.speed) >= ego_speed * 0.9  # (the creeping ego was not standing)
    start = grid_routes[0].dense[0]
    world.ego.reset(start.x, start.y, start.yaw, speed=5.0)  # the ego drives off
    for _ in range(20):
        world.step(VehicleControl(throttle=0.3))
    assert libsumo.person.getSpeed("w") > 0.5  # released: it walks on


@pytest.mark.parametrize("yielding", [True, False])
def test_a_car_stops_short_of_the_standing_ego(make_world, grid_routes, yielding: bool) -> None:
    """A SUMO car whose lane the standing ego sticks into from the next lane (where SUMO places it, so
    not its leader) brakes to a stop short of it; without the yielding it clips the car."""
    import libsumo

    from driving.worlds.embedded.traffic import ActorRow

    world = make_world(n_vehicles=0, n_pedestrians=0, yield_to_ego=yielding, standoff_timeout_s=100.0)
    world.reset(grid_routes[0], seed=0)
    edge, index, shape = _straight_lane("passenger", 80.0)
    width = libsumo.lane.getWidth(f"{edge}_{index}")
    # head-on, its centre 0.2 m past the lane's left edge: 0.19 m of its box in the car's way
    x, y, yaw = _along(shape, 70.0, lateral_left=width / 2 + 0.2)
    pose = (x, y, yaw + 180.0)
    if yielding:  # a pinned vehicle just behind the ego: a car row in the actor arrays that is no SUMO
        px, py, _ = _along(shape, 76.5, lateral_left=width / 2 + 0.2)  # background actor (not to be held)
        world.place_vehicle(px, py, pose[2])
    libsumo.route.add("yield_route", [edge])
    libsumo.vehicle.add("car", "yield_route", typeID="bg_sedan", departPos="5", departLane=str(index),
                        departSpeed="10")
    world.traffic.rows["car"] = ActorRow(901, 2.35, 0.925, True)
    touched, speeds = False, []
    for _ in range(200):  # 10 s
        world.ego.reset(*pose)
        world.step(VehicleControl(brake=1.0))
        car = next((a for a in world.tick().actors if a.id == 901), None)
        if car is None:
            break  # it drove past and left
        box = np.array([car.x, car.y, car.yaw, car.half_length, car.half_width])
        touched |= bool(obb_overlap(_ego_box(world), box)[0])
        speeds.append(car.speed)
    assert speeds and max(speeds) > 8.0  # it came at speed
    if not yielding:
        assert touched
        return
    assert not touched and world.yielding.holds >= 1
    assert speeds[-1] < 0.1  # standing short of the ego


@pytest.mark.parametrize("offset", [0, 1])
def test_a_walker_removed_by_the_stand_off_breaker_is_not_touched_after(make_world, grid_routes,
                                                                        offset: int) -> None:
    """The stand-off breaker removes a walker standing against the standing ego while the step's actor
    arrays (SUMO's results of that step) still list it: the yielding must leave it alone (SUMO would
    raise). ``offset`` shifts the removal by a step against the yielding's checks."""
    from tests.driving.world.test_world_behaviour import _hold_walkers

    world = make_world(n_vehicles=0, n_pedestrians=0, standoff_timeout_s=1.0)
    world.reset(grid_routes[0], seed=0)
    world.yielding._steps += offset  # the breaker runs on whole seconds: shift the yielding's check steps
    world.step(VehicleControl(brake=1.0))
    e = world.ego
    side = world.config.ego.half_width + 0.4
    spot = (e.x - math.sin(e.yaw) * side, e.y + math.cos(e.yaw) * side)
    seen = _hold_walkers(world, {"against": spot}, 3.0)
    assert "against" in seen[0] and "against" not in seen[-1]
    assert world.traffic.removed_standoffs == 1
