"""The expert's rules on hand-built Scenes, closed loop with the embedded world's kinematic ego."""

from __future__ import annotations

import copy
import math

import pytest

from driving.actions import SPEED_LEVELS_DEFAULT, ActionDriver
from driving.drivers import Driver
from expert import ExpertConfig, ExpertDriver
from tests.expert.conftest import MovingActor, Track, ego_state, left_turn, run_closed_loop, straight

LIGHT_S = 60.0  # stop line of the light on the straight track, m along it


def test_is_a_driver_and_an_action_driver_with_config_overrides() -> None:
    driver = ExpertDriver({"junction_speed": 9.0}, follow_s0=4.0)
    assert isinstance(driver, Driver) and isinstance(driver, ActionDriver)
    assert driver.config.junction_speed == 9.0 and driver.config.follow_s0 == 4.0
    assert ExpertDriver(ExpertConfig(max_speed=10.0), yellow_decel=3.0).config.max_speed == 10.0
    with pytest.raises(TypeError):
        ExpertDriver(no_such_threshold=1.0)


def test_stops_for_red_before_the_stop_line_and_never_creeps_past_it(expert: ExpertDriver) -> None:
    track = Track(straight(), light_s=LIGHT_S, light_state=lambda t: "red")
    log = run_closed_loop(track, expert, 25.0, speed=12.0)
    distances = [s.traffic_light.distance_to_stop_line for s in log.scenes]
    assert min(distances) >= 0.0, "front bumper crossed the red stop line"
    assert distances[-1] < 3.0, f"stopped {distances[-1]:.1f} m before the line: needlessly early"
    assert abs(log.scenes[-1].ego.speed) < 0.05
    assert log.actions[-1].speed_level == "STOP"
    # standing at the line for the last 10 s: no creeping forward
    assert max(distances[-200:]) - min(distances[-200:]) < 0.05
    assert expert.debug["kind"] == "red_light"


def test_goes_when_red_turns_green(expert: ExpertDriver) -> None:
    track = Track(straight(400.0), light_s=LIGHT_S, light_state=lambda t: "red" if t < 12.0 else "green")
    log = run_closed_loop(track, expert, 20.0, speed=12.0)
    waiting = [s for s in log.scenes if s.timestamp < 12.0 and abs(s.ego.speed) < 0.05]
    assert waiting, "did not wait at the red light"
    assert log.scenes[-1].traffic_light is None or log.scenes[-1].traffic_light.distance_to_stop_line < 0
    assert log.scenes[-1].ego.speed > 12.0  # brisk: back at the limit within 8 s


def test_goes_on_yellow_only_when_it_cannot_stop_comfortably(expert: ExpertDriver) -> None:
    # close and fast: stopping would need more than yellow_decel -> drive through
    near = Track(straight(), light_s=LIGHT_S, light_state=lambda t: "yellow")
    log = run_closed_loop(near, expert, 4.0, speed=13.0, start_s=LIGHT_S - 12.0 - expert.config.light_s0)
    assert log.scenes[-1].traffic_light is None or log.scenes[-1].traffic_light.distance_to_stop_line < 0
    assert min(s.ego.speed for s in log.scenes) > 10.0
    # far: a comfortable stop -> stops before the line
    far = Track(straight(), light_s=LIGHT_S, light_state=lambda t: "yellow")
    log = run_closed_loop(far, ExpertDriver(), 20.0, speed=13.0, start_s=0.0)
    assert all(s.traffic_light is not None and s.traffic_light.distance_to_stop_line >= 0.0 for s in log.scenes)
    assert abs(log.scenes[-1].ego.speed) < 0.05


def test_stops_fully_at_a_stop_sign_then_proceeds_once_cleared(expert: ExpertDriver) -> None:
    log = run_closed_loop(Track(straight(300.0), stop_s=50.0), expert, 20.0, speed=11.0)
    stopped = [i for i, s in enumerate(log.scenes) if abs(s.ego.speed) < 0.1 and s.stop_signs]
    assert stopped, "never came to a full stop at the sign"
    first = stopped[0]
    sign = log.scenes[first].stop_signs[0]
    assert 0.0 <= sign.distance_to_stop_line <= 5.0, sign
    # before the stop the front bumper never passed the line
    assert all(s.stop_signs[0].distance_to_stop_line >= 0.0 for s in log.scenes[:first] if s.stop_signs)
    # cleared -> drives on past the line and back up to speed
    assert any(s.stop_signs and s.stop_signs[0].cleared for s in log.scenes)
    assert log.scenes[-1].ego.speed > 8.0
    assert not log.scenes[-1].stop_signs or log.scenes[-1].stop_signs[0].distance_to_stop_line < 0


def test_follows_a_slower_lead_vehicle_with_idm_and_does_not_hit_it(expert: ExpertDriver) -> None:
    lead = MovingActor(7, "vehicle", 25.0, 0.0, 0.0, 6.0)
    log = run_closed_loop(Track(straight(400.0)), expert, 30.0, speed=12.0, actors=[lead])
    bumper_gap = log.min_gap[7] - expert.config.follow_s0 - 2.3 - log.scenes[0].ego.half_length
    assert bumper_gap > -1.0, f"closest centre distance {log.min_gap[7]:.1f} m"
    speeds = log.speeds()[-100:]
    assert abs(speeds.mean() - 6.0) < 0.7, speeds.mean()
    assert expert.debug["kind"] == "vehicle" and expert.debug["actor_id"] == 7


def test_stops_behind_a_standing_vehicle(expert: ExpertDriver) -> None:
    parked = MovingActor(3, "vehicle", 60.0, 0.0, 0.0, 0.0)
    log = run_closed_loop(Track(straight()), expert, 20.0, speed=13.0, actors=[parked])
    gap = log.min_gap[3] - 2.3 - log.scenes[0].ego.half_length
    assert 2.0 < gap < expert.config.follow_s0 + 2.0, gap
    assert abs(log.scenes[-1].ego.speed) < 0.05


def _left_turn_track() -> Track:
    xy = left_turn(approach=40.0, radius=12.0)
    options = ["LEFT" if x >= 40.0 and y < -0.01 and y > -12.0 else "LANEFOLLOW" for x, y in xy]
    return Track(xy, options=options)


def test_yields_to_an_oncoming_vehicle_at_an_unprotected_left(expert: ExpertDriver) -> None:
    # oncoming car in the opposite lane (3.2 m to the ego's left = -y), through the junction at ~13 m/s
    oncoming = MovingActor(11, "vehicle", 110.0, -3.2, 180.0, 13.0)
    track = _left_turn_track()
    log = run_closed_loop(track, expert, 20.0, speed=8.0, actors=[oncoming])
    # when the oncoming car passes the junction (x = 40..52), the ego has not entered its lane
    passing = [s for s in log.scenes if 38.0 < 110.0 - 13.0 * s.timestamp < 56.0]
    assert passing
    assert all(s.ego.y > -1.5 for s in passing), [round(s.ego.y, 2) for s in passing]
    assert min(s.ego.speed for s in passing) < 2.0, "did not wait for the oncoming car"
    assert log.min_gap[11] > 2.5  # the lanes' centres are 3.2 m apart
    # and then turns
    assert log.scenes[-1].ego.y < -12.0


def test_turns_left_without_stopping_when_nothing_comes(expert: ExpertDriver) -> None:
    log = run_closed_loop(_left_turn_track(), expert, 12.0, speed=8.0)
    assert min(s.ego.speed for s in log.scenes) > 3.0
    assert log.scenes[-1].ego.y < -12.0
    # lane keeping through the turn: within 0.3 m of the route
    assert max(math.hypot(s.route[0].ego_x, s.route[0].ego_y) for s in log.scenes if len(s.route) > 10) < 0.3


def test_brakes_for_a_pedestrian_crossing_into_its_path(expert: ExpertDriver) -> None:
    walker = MovingActor(5, "pedestrian", 32.0, 5.0, -90.0, 1.4, 0.25, 0.3)
    log = run_closed_loop(Track(straight()), expert, 15.0, speed=10.0, actors=[walker])
    assert min(a.target_speed for a in log.actions) < 3.0
    assert log.min_gap[5] > 1.6, f"came within {log.min_gap[5]:.2f} m of the walker"
    assert log.scenes[-1].ego.speed > 6.0  # and drives on once the walker has crossed
    # a walker walking away from the road is no reason to brake
    away = MovingActor(6, "pedestrian", 32.0, 5.0, 90.0, 1.4, 0.25, 0.3)
    log = run_closed_loop(Track(straight()), ExpertDriver(), 6.0, speed=10.0, actors=[away])
    assert min(a.target_speed for a in log.actions) > 9.5


def test_label_is_the_shared_speed_level_of_its_target(expert: ExpertDriver) -> None:
    track = Track(straight(), light_s=LIGHT_S, light_state=lambda t: "red" if t < 8.0 else "green")
    log = run_closed_loop(track, expert, 16.0, speed=13.0, actors=[MovingActor(2, "vehicle", 90.0, 0.0, 0.0, 4.0)])
    levels = {a.speed_level for a in log.actions}
    assert levels == {"MOVE", "SLOW", "STOP"}, levels
    for scene, action in zip(log.scenes, log.actions, strict=False):
        assert action.speed_level == SPEED_LEVELS_DEFAULT.label(action.target_speed, scene)


def test_act_is_a_pure_function_of_the_scene(expert: ExpertDriver) -> None:
    track = Track(straight(), light_s=LIGHT_S)
    walker = MovingActor(5, "pedestrian", 32.0, 5.0, -90.0, 1.4, 0.25, 0.3)
    log = run_closed_loop(track, expert, 5.0, speed=10.0, actors=[walker])
    scene = log.scenes[-1]
    before = copy.deepcopy(scene)
    fresh = ExpertDriver()
    fresh.reset(expert.route)
    first, second, third = expert.act(scene), expert.act(scene), fresh.act(scene)
    assert first == second == third
    assert scene == before, "act() changed its input"


def test_debug_names_the_hazard_behind_the_target(expert: ExpertDriver) -> None:
    scene = Track(straight(), light_s=12.0).scene(ego_state(speed=10.0))
    action = expert.act(scene)
    assert action.speed_level in ("SLOW", "STOP")
    assert expert.debug["kind"] == "red_light"
    assert expert.debug["distance"] == pytest.approx(12.0 - scene.ego.half_length, abs=0.6)
    assert expert.debug["target_speed"] == action.target_speed


def test_stops_at_the_end_of_its_route(expert: ExpertDriver) -> None:
    track = Track(straight(30.0))
    scene = track.scene(ego_state(x=29.6, speed=1.0))
    assert expert.act(scene).speed_level == "STOP"


@pytest.mark.parametrize("hold", [True, False])
def test_inside_a_junction_it_stops_at_once_for_a_crossing_car(hold: bool) -> None:
    """Just inside the junction (turning left at 3 m/s) when an oncoming car is forecast to cross its
    path a few metres ahead: it stops where it is (``junction_hold``) instead of creeping up to the
    forecast conflict, and the car passes clear; creeping up (the rule off) brings the two cars'
    centres within 1.4 m of each other. Then it turns."""
    track = _left_turn_track()
    start = 41.0  # m along the route: 1 m into the turn
    oncoming = MovingActor(12, "vehicle", 80.0, -3.2, 180.0, 13.0)
    log = run_closed_loop(track, ExpertDriver(junction_hold=hold), 12.0, speed=3.0, actors=[oncoming],
                          start_s=start)
    assert log.scenes[0].in_junction
    standing = next(s for s in log.scenes if s.ego.speed < 0.05)
    crept = track.project(standing.ego.x, standing.ego.y)[1] - start
    if hold:
        assert crept < 2.5, f"crept {crept:.1f} m into the junction"
        assert log.min_gap[12] > 2.5  # the lanes' centres are 3.2 m apart
    else:
        assert crept > 4.0 and log.min_gap[12] < 2.0
    assert log.scenes[-1].ego.y < -12.0  # and turns once the car has passed
