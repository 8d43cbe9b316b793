"""Low-level controllers: PID, speed (throttle/brake) and steering (pure pursuit, heading PID).

Conventions follow ``driving.scene``: ego frame x forward, y right; ``VehicleControl.steer`` in
[-1, 1] with positive to the right; steer 1 is the full front-wheel angle (70 degrees on CARLA's
Lincoln MKZ).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class PIDController:
    """A discrete PID with an anti-windup clamp on the integral term."""

    kp: float = 1.0
    ki: float = 0.0
    kd: float = 0.0
    dt: float = 0.05
    integral_limit: float = 1.0  # |integral of error| is kept below this (error units x s)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._integral = 0.0
        self._previous: float | None = None

    def step(self, error: float) -> float:
        self._integral = max(-self.integral_limit, min(self.integral_limit, self._integral + error * self.dt))
        derivative = 0.0 if self._previous is None else (error - self._previous) / self.dt
        self._previous = error
        return self.kp * error + self.ki * self._integral + self.kd * derivative


@dataclass
class SpeedController:
    """Target speed -> (throttle, brake) through a PID on the speed error."""

    kp: float = 0.6
    ki: float = 0.15
    kd: float = 0.0
    dt: float = 0.05
    max_throttle: float = 0.75
    brake_gain: float = 1.0  # brake per unit of negative PID output (m/s of overspeed x kp)
    hold_speed: float = 0.3  # below this with a zero target, hold the car with full brake

    def __post_init__(self) -> None:
        self.pid = PIDController(self.kp, self.ki, self.kd, self.dt, integral_limit=4.0)

    def reset(self) -> None:
        self.pid.reset()

    def step(self, target_speed: float, speed: float) -> tuple[float, float]:
        if target_speed <= 0.05 and speed <= self.hold_speed:
            self.pid.reset()
            return 0.0, 1.0
        u = self.pid.step(target_speed - speed)
        if u >= 0.0:
            return min(u, self.max_throttle), 0.0
        return 0.0, min(1.0, -u * self.brake_gain)


def pure_pursuit_steer(ego_x: float, ego_y: float, wheelbase: float = 2.9, max_steer_deg: float = 70.0) -> float:
    """Steer command that puts the ego on an arc through the ego-frame point (``ego_x``, ``ego_y``).

    The arc through the point from the ego's centre has curvature ``2 y / d^2``; the bicycle's
    wheel angle for it is ``atan(curvature * wheelbase)``.
    """
    d2 = ego_x * ego_x + ego_y * ego_y
    if d2 < 1e-6:
        return 0.0
    wheel = math.atan(2.0 * ego_y / d2 * wheelbase)
    return max(-1.0, min(1.0, wheel / math.radians(max_steer_deg)))


@dataclass
class HeadingPID:
    """Steering from the angle to a look-ahead point (PDM-Lite style lateral PID), in [-1, 1]."""

    kp: float = 1.25
    ki: float = 0.05
    kd: float = 0.3
    dt: float = 0.05

    def __post_init__(self) -> None:
        self.pid = PIDController(self.kp, self.ki, self.kd, self.dt, integral_limit=0.5)

    def reset(self) -> None:
        self.pid.reset()

    def step(self, ego_x: float, ego_y: float) -> float:
        angle = math.atan2(ego_y, ego_x) / (0.5 * math.pi)  # 1 = point 90 degrees to the right
        return max(-1.0, min(1.0, self.pid.step(angle)))
