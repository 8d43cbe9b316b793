"""Reference drives: SUMO's own driver model drives the ego along its route, in the same traffic.

``SumoDrivenWorld`` is an ``EmbeddedWorld`` whose ego is not integrated from the controls it is given:
after ``reset`` places it at the route's start, SUMO drives the ego vehicle with the car-following and
junction model of the background traffic (Krauss; it obeys lights, stop signs, right of way and
speed limits, at exactly the limit: speed factor 1, no driver imperfection), and each step reads its
pose and speed back into the ego. Everything else -- traffic, criteria, Scene, ground truth -- is
unchanged, so the same criteria score the drive.

What it is for: the 2.x MinimumSpeed criterion compares the ego with the traffic around it. A typical
member of that traffic, driving the same route, shows what score the criterion leaves to a law-abiding
driver in this world (``python -m expert.evaluate --reference``). The ego box is the world's ego
(``EgoParams``); SUMO moves the box's front bumper, as it does for every vehicle.
"""

from __future__ import annotations

import math
from typing import Any

from driving.scene import Scene
from driving.types import Route, VehicleControl
from driving.worlds.embedded.world import EGO_SUMO_ID, EmbeddedWorld

# SUMO's default speed mode (all safety checks, lights, right of way) and lane-change mode (strategic,
# cooperative, speed gain and keep-right changes, none that would conflict with the route).
_SUMO_SPEED_MODE = 31
_SUMO_LANE_CHANGE_MODE = 0b011001010101


class SumoDrivenWorld(EmbeddedWorld):
    """An ``EmbeddedWorld`` whose ego SUMO drives (see the module); ``step``'s control is ignored."""

    _sumo_drives = False

    def reset(self, route: Route, seed: int | None = None) -> Scene:
        self._sumo_drives = False  # the base reset places the ego by moveToXY, as usual
        scene = super().reset(route, seed)
        self.ego.step = _hold  # from now on SUMO moves the ego; our bicycle model must not
        self._hand_ego_to_sumo()
        return scene

    def _hand_ego_to_sumo(self) -> None:
        vehicle = self._sumo.vehicle
        vehicle.setSpeedMode(EGO_SUMO_ID, _SUMO_SPEED_MODE)
        vehicle.setLaneChangeMode(EGO_SUMO_ID, _SUMO_LANE_CHANGE_MODE)
        vehicle.setSpeedFactor(EGO_SUMO_ID, 1.0)
        vehicle.setImperfection(EGO_SUMO_ID, 0.0)
        self._sumo_drives = True

    def _insert_ego(self) -> None:
        super()._insert_ego()
        if self._sumo_drives:  # re-inserted after SUMO removed it: SUMO keeps driving it
            self._hand_ego_to_sumo()

    def _sync_ego(self) -> None:
        if not self._sumo_drives:
            super()._sync_ego()

    def _ensure_ego(self) -> None:
        # called right after each SUMO step, before the traffic, the actor table and the Scene are
        # updated: read the pose SUMO drove the ego to, so all of them see it
        super()._ensure_ego()
        if self._sumo_drives:
            self._read_ego_from_sumo()

    def _read_ego_from_sumo(self) -> None:
        vehicle, ego = self._sumo.vehicle, self.ego
        if EGO_SUMO_ID not in vehicle.getIDList():
            return
        fx, fy = vehicle.getPosition(EGO_SUMO_ID)
        yaw = math.radians(vehicle.getAngle(EGO_SUMO_ID) - 90.0)
        speed = float(vehicle.getSpeed(EGO_SUMO_ID))
        half = ego.params.half_length
        ego.acceleration = (speed - ego.speed) / self.dt
        ego.x, ego.y = fx - half * math.cos(yaw), -fy - half * math.sin(yaw)
        ego.yaw, ego.speed = yaw, speed


def _hold(control: VehicleControl, dt: float) -> None:
    """The ego's integration step while SUMO drives it: nothing."""


class SumoReferenceDriver:
    """The driver of a ``SumoDrivenWorld`` drive: SUMO drives, so it only hands over neutral controls."""

    def __init__(self) -> None:
        self.debug: dict[str, Any] = {"kind": "sumo"}

    def reset(self, route: Route) -> None:
        pass

    def run_step(self, scene: Scene) -> VehicleControl:
        return VehicleControl()
