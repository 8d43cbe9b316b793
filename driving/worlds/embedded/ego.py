"""The ego vehicle: a kinematic bicycle model with CARLA Lincoln MKZ 2020 dimensions and limits.

State is kept in the CARLA world frame (see ``driving.scene``): ``x, y`` is the bounding-box centre,
``yaw`` in radians (0 along +x, positive towards +y). The bicycle's reference point is the centre of
the box with the axles ``wheelbase/2`` either side, so the slip angle is
``beta = atan(tan(delta) / 2)``.

Controls map to physics the way CARLA's vehicle physics behaves to first order:
- steer in [-1, 1] -> front-wheel angle ``steer * max_steer`` scaled by CARLA's speed-dependent
  steering curve, reached through a first-order lag, and capped by tyre friction
  (lateral acceleration ``v^2 * curvature <= max_lateral_accel``) which a kinematic model lacks;
- throttle -> traction limited by engine power (``a <= power / (m v)``), brake -> deceleration,
  both through a first-order lag; aerodynamic drag and rolling resistance slow the car when coasting;
- hand_brake -> strong deceleration; reverse -> throttle drives backwards (capped speed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from driving.types import VehicleControl


@dataclass
class EgoParams:
    """Dimensions and limits of the ego (defaults: CARLA ``vehicle.lincoln.mkz_2020``)."""

    half_length: float = 2.45  # m (CARLA bounding-box extent.x 2.44)
    half_width: float = 1.06  # m (extent.y 1.06 -> 2.1 m wide with mirrors folded)
    wheelbase: float = 2.9  # m
    max_steer_deg: float = 70.0  # front-wheel angle at steer = 1 (CARLA physics control)
    steer_time_constant: float = 0.1  # s, first-order lag of the wheel angle
    max_lateral_accel: float = 8.0  # m/s^2, tyre friction limit on curvature at speed
    max_accel: float = 4.0  # m/s^2 at full throttle, low speed
    power_to_mass: float = 60.0  # W/kg (~110 kW / 1.85 t): caps traction at speed
    max_brake_decel: float = 8.0  # m/s^2 at full brake
    hand_brake_decel: float = 6.0  # m/s^2
    accel_time_constant: float = 0.15  # s, first-order lag of throttle and brake
    drag_coefficient: float = 0.00045  # 1/m: a_drag = c * v^2 (0.5 rho cd A / m)
    rolling_resistance: float = 0.12  # m/s^2
    max_reverse_speed: float = 5.0  # m/s

    @property
    def length(self) -> float:
        return 2.0 * self.half_length

    @property
    def width(self) -> float:
        return 2.0 * self.half_width


# CARLA MKZ steering curve: fraction of max steer vs speed (km/h).
_STEER_CURVE = ((0.0, 1.0), (20.0, 0.9), (60.0, 0.8), (120.0, 0.7))


def _steer_curve(speed_mps: float) -> float:
    kmh = abs(speed_mps) * 3.6
    for (v0, f0), (v1, f1) in zip(_STEER_CURVE, _STEER_CURVE[1:], strict=False):
        if kmh <= v1:
            return f0 + (f1 - f0) * (kmh - v0) / (v1 - v0)
    return _STEER_CURVE[-1][1]


class EgoVehicle:
    """Integrates the bicycle model one fixed step at a time (semi-implicit Euler)."""

    def __init__(self, params: EgoParams | None = None) -> None:
        self.params = params or EgoParams()
        self.x = 0.0
        self.y = 0.0
        self.yaw = 0.0  # radians
        self.speed = 0.0  # signed forward speed, m/s
        self.acceleration = 0.0  # signed forward acceleration, m/s^2
        self.wheel_angle = 0.0  # radians, positive = right (towards +y)
        self.steer_command = 0.0
        self.throttle_state = 0.0  # lagged pedal positions
        self.brake_state = 0.0

    def reset(self, x: float, y: float, yaw_deg: float, speed: float = 0.0) -> None:
        self.x, self.y, self.yaw = float(x), float(y), math.radians(yaw_deg)
        self.speed = float(speed)
        self.acceleration = 0.0
        self.wheel_angle = 0.0
        self.steer_command = 0.0
        self.throttle_state = 0.0
        self.brake_state = 0.0

    @property
    def yaw_deg(self) -> float:
        return math.degrees(math.atan2(math.sin(self.yaw), math.cos(self.yaw)))

    def front_bumper(self) -> tuple[float, float]:
        hl = self.params.half_length
        return self.x + hl * math.cos(self.yaw), self.y + hl * math.sin(self.yaw)

    def step(self, control: VehicleControl, dt: float) -> None:
        """Advance the state by ``dt`` under ``control`` (already clipped to CARLA ranges)."""
        p = self.params
        v0 = self.speed
        # Longitudinal: pedals act through a first-order lag; traction follows the gear direction,
        # brakes and resistance only ever slow the car towards zero (never through it).
        alpha_a = dt / (p.accel_time_constant + dt)
        self.throttle_state += alpha_a * (control.throttle - self.throttle_state)
        self.brake_state += alpha_a * (control.brake - self.brake_state)
        direction = -1.0 if control.reverse else 1.0
        traction = self.throttle_state * min(p.max_accel, p.power_to_mass / max(abs(v0), 1e-3))
        if control.reverse and v0 <= -p.max_reverse_speed:
            traction = 0.0
        v_t = v0 + direction * traction * dt
        resist = p.drag_coefficient * v_t * v_t + p.rolling_resistance + self.brake_state * p.max_brake_decel
        if control.hand_brake:
            resist += p.hand_brake_decel
        v1 = math.copysign(max(abs(v_t) - resist * dt, 0.0), v_t)
        if control.reverse:
            v1 = max(v1, -p.max_reverse_speed)
        self.acceleration = (v1 - v0) / dt
        # Lateral: lagged wheel angle, speed-dependent steering range, friction-capped curvature.
        self.steer_command = control.steer
        target_wheel = control.steer * math.radians(p.max_steer_deg) * _steer_curve(v1)
        alpha_s = dt / (p.steer_time_constant + dt)
        self.wheel_angle += alpha_s * (target_wheel - self.wheel_angle)
        beta = math.atan(0.5 * math.tan(self.wheel_angle))
        # Yaw rate of the centre reference: v * sin(beta) / (wheelbase / 2).
        curvature = 2.0 * math.sin(beta) / p.wheelbase
        v_mid = 0.5 * (v0 + v1)
        if v_mid * v_mid * abs(curvature) > p.max_lateral_accel:
            limited = p.max_lateral_accel / (v_mid * v_mid)
            curvature = math.copysign(limited, curvature)
            beta = math.asin(max(-1.0, min(1.0, curvature * p.wheelbase / 2.0)))
        heading = self.yaw + beta
        self.x += v_mid * math.cos(heading) * dt
        self.y += v_mid * math.sin(heading) * dt
        self.yaw += v_mid * curvature * dt
        self.speed = v1
