"""The LangProp action and its one meaning, shared by the expert (labels) and the learner (policy).

A driving policy answers ``predict_speed_and_steering(scene) -> (speed_level, steering_deg)``:

- ``speed_level`` is one of ``"MOVE"``, ``"SLOW"``, ``"STOP"``. Each level *is* a target speed that
  the shared ``ActionController`` drives towards:

  ========  ==========================================================================================
  level     target speed
  ========  ==========================================================================================
  MOVE      the current lane's speed limit (``scene.speed_limit``), capped at ``SpeedLevels.max_move``
  SLOW      ``SpeedLevels.slow`` m/s (approaching a hazard, creeping, tight turns)
  STOP      0 m/s; the controller brakes, and holds the car with full brake once it is (almost) still
  ========  ==========================================================================================

  The expert plans a continuous target speed; its *label* is the level whose target speed is nearest
  to it (``label_speed_level``), with STOP whenever its target is below ``SpeedLevels.stop_below``.
  That is the only mapping: the learner is scored against these labels and driven with these targets.

- ``steering_deg`` is the angle, in the ego frame (positive = to the right), from the ego's heading to
  the point it wants to drive towards, in degrees (``atan2(ego_y, ego_x)`` of that point), where that
  point is about ``aim_distance(speed)`` metres from the ego's centre (3.5 m standing, +0.35 m per m/s,
  at most 8 m). ``ActionController`` turns it into ``VehicleControl.steer`` by pure pursuit: the arc
  through the ego's centre and a point at that angle and distance has curvature
  ``2 sin(angle) / aim_distance``, and the steer is the front-wheel angle of that arc (kinematic bicycle,
  ``SteeringGeometry``). A point farther (nearer) than ``aim_distance`` at the same angle asks for a
  proportionally tighter (wider) arc, so aim at a point that distance away.

Drivers that produce actions implement ``ActionDriver``: ``act(scene) -> Action``; ``run_step`` (the
``driving.drivers.Driver`` interface every runner uses) is ``act`` followed by the shared controller,
and ``last_action`` keeps the action behind the last control (the data recorder reads it).
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass

from driving.controllers import SpeedController
from driving.scene import Scene
from driving.types import Route, VehicleControl

SPEED_LEVELS: tuple[str, ...] = ("MOVE", "SLOW", "STOP")  # index = the level's code in datasets


@dataclass(frozen=True)
class SpeedLevels:
    """The target speed of each level (m/s). One instance (``SPEED_LEVELS_DEFAULT``) is shared."""

    slow: float = 4.0
    max_move: float = 13.9  # 50 km/h: MOVE never asks for more, whatever the lane's limit
    stop_below: float = 1.0  # an expert target below this is labelled STOP

    def target_speed(self, level: str, scene: Scene) -> float:
        """The target speed that ``level`` means in ``scene`` (raises ``ValueError`` for other levels)."""
        if level == "MOVE":
            return max(self.slow, min(self.max_move, float(scene.speed_limit)))
        if level == "SLOW":
            return self.slow
        if level == "STOP":
            return 0.0
        raise ValueError(f"speed level must be one of {', '.join(SPEED_LEVELS)}, got {level!r}")

    def label(self, target_speed: float, scene: Scene) -> str:
        """The level whose target speed is nearest ``target_speed`` (STOP below ``stop_below``)."""
        if target_speed < self.stop_below:
            return "STOP"
        move = self.target_speed("MOVE", scene)
        return "SLOW" if abs(target_speed - self.slow) <= abs(target_speed - move) else "MOVE"


SPEED_LEVELS_DEFAULT = SpeedLevels()


def label_speed_level(target_speed: float, scene: Scene, levels: SpeedLevels = SPEED_LEVELS_DEFAULT) -> str:
    return levels.label(target_speed, scene)


@dataclass(frozen=True)
class Action:
    """One driver decision: the LangProp action plus the continuous target behind it."""

    speed_level: str  # MOVE | SLOW | STOP
    steering_deg: float  # ego frame, positive = right
    target_speed: float  # m/s the controller aims for (the level's target for a learner)

    @property
    def level_code(self) -> int:
        return SPEED_LEVELS.index(self.speed_level)


@dataclass(frozen=True)
class SteeringGeometry:
    """The aim distance of a steering angle and the ego's steering (defaults: CARLA's Lincoln MKZ)."""

    aim_min: float = 3.5  # m, aim distance standing still
    aim_gain: float = 0.35  # s, ... growing with speed
    aim_max: float = 8.0  # m
    wheelbase: float = 2.9  # m
    max_steer_deg: float = 70.0  # front-wheel angle at steer = 1
    # fraction of max_steer_deg available vs speed (km/h), as CARLA's vehicle physics applies it
    steer_curve: tuple[tuple[float, float], ...] = ((0.0, 1.0), (20.0, 0.9), (60.0, 0.8), (120.0, 0.7))

    def aim_distance(self, speed: float) -> float:
        return min(self.aim_max, self.aim_min + self.aim_gain * abs(speed))

    def steer(self, angle_deg: float, speed: float) -> float:
        """``VehicleControl.steer`` for the arc through the point at ``angle_deg`` and ``aim_distance``."""
        angle = math.radians(max(-90.0, min(90.0, angle_deg)))
        curvature = 2.0 * math.sin(angle) / self.aim_distance(speed)
        # centre-referenced bicycle: slip angle beta from curvature, wheel angle from beta
        beta = math.asin(max(-1.0, min(1.0, 0.5 * curvature * self.wheelbase)))
        wheel = math.atan(2.0 * math.tan(beta))
        kmh = abs(speed) * 3.6
        fraction = self.steer_curve[-1][1]
        for (v0, f0), (v1, f1) in zip(self.steer_curve, self.steer_curve[1:], strict=False):
            if kmh <= v1:
                fraction = f0 + (f1 - f0) * (kmh - v0) / (v1 - v0)
                break
        return max(-1.0, min(1.0, wheel / (math.radians(self.max_steer_deg) * fraction)))


STEERING_DEFAULT = SteeringGeometry()


def aim_distance(speed: float, geometry: SteeringGeometry = STEERING_DEFAULT) -> float:
    """How far (m) from the ego's centre the point behind a steering angle is taken to be at ``speed`` (m/s)."""
    return geometry.aim_distance(speed)


class ActionController:
    """(target speed, steering angle) -> ``VehicleControl``; the same for expert and learner.

    Speed: a PID on the speed error while accelerating or holding speed; more than ``brake_deadband``
    m/s too fast it brakes in proportion to the excess (``brake_gain`` per m/s) and clears the PID's
    integral, so throttle wound up on the way to a speed never delays a stop; standing (below the
    ``SpeedController``'s hold speed) with a zero target it holds the car on full brake.
    """

    brake_deadband = 0.2  # m/s
    brake_gain = 0.6  # brake per m/s of excess speed (full brake 1.7 m/s too fast)

    def __init__(self, dt: float = 0.05, steering: SteeringGeometry = STEERING_DEFAULT) -> None:
        self.speed = SpeedController(dt=dt, max_throttle=1.0)
        self.steering = steering

    def reset(self) -> None:
        self.speed.reset()

    def control(self, action: Action, scene: Scene) -> VehicleControl:
        steer = self.steering.steer(action.steering_deg, scene.ego.speed)
        target, speed = action.target_speed, scene.ego.speed
        if target < speed - self.brake_deadband and not (target <= 0.05 and speed <= self.speed.hold_speed):
            self.speed.reset()
            return VehicleControl(throttle=0.0, steer=steer, brake=min(1.0, self.brake_gain * (speed - target)))
        throttle, brake = self.speed.step(target, speed)
        return VehicleControl(throttle=throttle, steer=steer, brake=brake)


class ActionDriver:
    """Base of drivers that decide an ``Action`` per tick; satisfies ``driving.drivers.Driver``."""

    def __init__(self, dt: float = 0.05) -> None:
        self.controller = ActionController(dt=dt)
        self.last_action: Action | None = None

    def reset(self, route: Route) -> None:
        self.controller.reset()
        self.last_action = None

    @abstractmethod
    def act(self, scene: Scene) -> Action:
        """The action for ``scene``. Must not depend on having driven the previous scenes (DAgger
        labelling calls it on scenes another driver produced)."""

    def run_step(self, scene: Scene) -> VehicleControl:
        self.last_action = self.act(scene)
        return self.controller.control(self.last_action, scene)
