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
  the point it wants to drive towards, in degrees (``atan2(ego_y, ego_x)`` of that point).
  ``ActionController`` turns it into ``VehicleControl.steer``.

Drivers that produce actions implement ``ActionDriver``: ``act(scene) -> Action``; ``run_step`` (the
``driving.drivers.Driver`` interface every runner uses) is ``act`` followed by the shared controller,
and ``last_action`` keeps the action behind the last control (the data recorder reads it).
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass

from driving.controllers import HeadingPID, SpeedController
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


class ActionController:
    """(target speed, steering angle) -> ``VehicleControl``; the same for expert and learner."""

    def __init__(self, dt: float = 0.05) -> None:
        self.speed = SpeedController(dt=dt)
        self.heading = HeadingPID(dt=dt)

    def reset(self) -> None:
        self.speed.reset()
        self.heading.reset()

    def control(self, action: Action, scene: Scene) -> VehicleControl:
        angle = math.radians(max(-90.0, min(90.0, action.steering_deg)))
        steer = self.heading.step(math.cos(angle), math.sin(angle))
        throttle, brake = self.speed.step(action.target_speed, scene.ego.speed)
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
