"""Kinematic ego model and the low-level controllers (no simulator needed)."""

from __future__ import annotations

import math

import pytest

from driving.controllers import PIDController, SpeedController, pure_pursuit_steer
from driving.types import VehicleControl
from driving.worlds.embedded import EgoParams, EgoVehicle

DT = 0.05


def drive(ego: EgoVehicle, control: VehicleControl, seconds: float) -> None:
    for _ in range(round(seconds / DT)):
        ego.step(control, DT)


def test_throttle_accelerates_and_brake_stops_without_reversing() -> None:
    ego = EgoVehicle()
    ego.reset(0.0, 0.0, 0.0)
    drive(ego, VehicleControl(throttle=1.0), 5.0)
    assert 10.0 < ego.speed < 25.0  # ~0-100 km/h in 7-10 s like a sedan
    assert ego.x > 20.0 and ego.y == pytest.approx(0.0)
    drive(ego, VehicleControl(brake=1.0), 5.0)
    assert ego.speed == 0.0
    x_stopped = ego.x
    drive(ego, VehicleControl(brake=1.0), 1.0)
    assert ego.x == x_stopped  # brakes hold, never push backwards


def test_full_brake_deceleration_is_realistic() -> None:
    ego = EgoVehicle()
    ego.reset(0.0, 0.0, 0.0, speed=20.0)
    drive(ego, VehicleControl(brake=1.0), 1.0)
    # ~8 m/s^2 after a short pedal lag
    assert 10.0 < ego.speed < 14.5


def test_positive_steer_turns_right_in_carla_frame() -> None:
    ego = EgoVehicle()
    ego.reset(0.0, 0.0, 0.0, speed=5.0)
    drive(ego, VehicleControl(throttle=0.2, steer=0.3), 1.0)
    assert ego.yaw > 0.0 and ego.y > 0.0  # towards +y: right in the left-handed frame


def test_turning_is_limited_by_friction_at_speed() -> None:
    params = EgoParams()
    ego = EgoVehicle(params)
    ego.reset(0.0, 0.0, 0.0, speed=25.0)
    ego.wheel_angle = math.radians(params.max_steer_deg)
    ego.step(VehicleControl(throttle=0.5, steer=1.0), DT)
    yaw_rate = ego.yaw / DT
    assert abs(yaw_rate * ego.speed) <= params.max_lateral_accel * 1.05


def test_reverse_gear_drives_backwards_up_to_the_cap() -> None:
    ego = EgoVehicle()
    ego.reset(0.0, 0.0, 90.0)
    drive(ego, VehicleControl(throttle=1.0, reverse=True), 10.0)
    assert ego.speed == pytest.approx(-EgoParams().max_reverse_speed, abs=0.05)
    assert ego.y < -10.0  # heading +y, moving towards -y


def test_pid_integrates_and_clamps() -> None:
    pid = PIDController(kp=1.0, ki=1.0, kd=0.0, dt=0.1, integral_limit=0.5)
    outputs = [pid.step(1.0) for _ in range(20)]
    assert outputs[0] == pytest.approx(1.1)
    assert outputs[-1] == pytest.approx(1.5)  # integral clamped at 0.5
    pid.reset()
    assert pid.step(0.0) == 0.0


def test_speed_controller_throttles_brakes_and_holds() -> None:
    ctrl = SpeedController()
    assert ctrl.step(8.0, 2.0)[0] > 0.0
    ctrl.reset()
    throttle, brake = ctrl.step(2.0, 10.0)
    assert throttle == 0.0 and brake > 0.0
    assert ctrl.step(0.0, 0.1) == (0.0, 1.0)


def test_pure_pursuit_steers_towards_the_point() -> None:
    assert pure_pursuit_steer(10.0, 0.0) == 0.0
    assert pure_pursuit_steer(10.0, 2.0) > 0.0 > pure_pursuit_steer(10.0, -2.0)
    assert pure_pursuit_steer(1.0, 5.0) == 1.0 or pure_pursuit_steer(1.0, 5.0) > 0.5
