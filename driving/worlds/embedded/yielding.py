"""SUMO's walkers and cars yield to a (nearly) standing ego, as CARLA's do.

SUMO knows the ego only as a vehicle moved onto a lane from outside. Its walkers (striping model)
walk through a car standing on their walking area or crossing, and its cars inside a junction cut into
an ego that SUMO's junction model does not see. In CARLA neither happens: walkers navigate around
vehicles (they are obstacles of the walker crowd) and the Traffic Manager's collision stage brakes for
any vehicle in the path. Without this, a standing ego collects collisions it could not have avoided
(counted by leaderboard 1.0; 2.x exempts contacts below 0.1 m/s but the car then stands in a
stand-off until the breaker in ``traffic.py`` clears it).

So while the ego is slower than ``EGO_SLOW``, a walker or car whose way straight ahead runs to within
``CLEARANCE`` of the ego's box is held (``setSpeed(0)``): a walker over the next ``WALKER_LOOKAHEAD``
seconds, a car over its braking distance plus ``VEHICLE_REACH``. It is released when that no longer
holds or the ego moves on. A held actor standing against the standing ego is one the stand-off breaker
removes after ``standoff_timeout_s``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import traci.constants as tc

from driving.geometry import obb_overlap
from driving.worlds.embedded.traffic import PEDESTRIAN_HALF_LENGTH, PEDESTRIAN_HALF_WIDTH

EGO_SLOW = 1.0  # m/s: below this the ego counts as standing for SUMO's actors
CLEARANCE = 0.2  # m kept between a held actor and the ego's box
WALKER_LOOKAHEAD = 0.2  # s of walking checked ahead of a walker (it stops at once; held this close, the
# stand-off breaker counts it as standing against the ego)
VEHICLE_DECEL = 4.5  # m/s^2, SUMO's passenger-car deceleration (the background types keep it)
VEHICLE_REACH = 1.5  # m checked beyond a car's braking distance
NEAR = 40.0  # m: only actors this close to the ego (along x and y) are checked (a car at 14 m/s brakes in 22 m)


def on_collision_course(ego: tuple[float, float, float, float, float], front_x: np.ndarray,
                        front_y: np.ndarray, yaw_deg: np.ndarray, half_width: np.ndarray,
                        reach: np.ndarray) -> np.ndarray:
    """Which actors' way straight ahead -- a strip as wide as the actor from its front (``front_x``,
    ``front_y``, world frame) ``reach`` metres along ``yaw_deg`` -- comes within ``CLEARANCE`` of the
    ego's box ``(x, y, yaw_deg, half_length, half_width)``. An actor beside or behind the ego and
    moving away from it has no such strip overlap."""
    a = np.radians(yaw_deg)
    half = 0.5 * np.maximum(reach, 1e-3)
    strips = np.stack([front_x + half * np.cos(a), front_y + half * np.sin(a), yaw_deg, half, half_width], axis=1)
    x, y, yaw, hl, hw = ego
    return obb_overlap((x, y, yaw, hl + CLEARANCE, hw + CLEARANCE), strips)


class EgoYielding:
    """Holds the SUMO actors on a collision course with the slow ego (see the module docstring)."""

    def __init__(self, sumo: Any, excluded: set[str]) -> None:
        self.sumo = sumo
        self.excluded = excluded  # SUMO vehicles never held (the ego, placed vehicles)
        self.held_walkers: dict[str, float] = {}  # SUMO id -> walking speed to give back
        self.held_vehicles: set[str] = set()
        self.holds = 0  # actors held so far this episode

    def update(self, ego: Any) -> None:
        """Hold or release actors for this step; ``ego`` is the ego's ``ActorBox``."""
        if abs(ego.speed) >= EGO_SLOW:
            self.release_all()
            return
        box = (ego.x, ego.y, ego.yaw, ego.half_length, ego.half_width)
        self._walkers(box)
        self._vehicles(box)

    def release_all(self) -> None:
        person, vehicle = self.sumo.person, self.sumo.vehicle
        alive = set(person.getIDList()) if self.held_walkers else set()
        for pid, speed in self.held_walkers.items():
            if pid in alive:
                person.setSpeed(pid, speed)
        if self.held_vehicles:
            alive = set(vehicle.getIDList())
            for vid in self.held_vehicles & alive:
                vehicle.setSpeed(vid, -1.0)  # back to SUMO's own speed
        self.held_walkers, self.held_vehicles = {}, set()

    def _near(self, results: dict[str, dict[int, Any]], box: tuple[float, ...]) -> list[tuple[str, float, float,
                                                                                            float, float]]:
        """(id, x, y, yaw_deg, speed) in the CARLA frame of the subscribed actors near the ego."""
        out = []
        x0, y0 = box[0], box[1]
        for sid, r in results.items():
            px, py = r[tc.VAR_POSITION]
            if abs(px - x0) < NEAR and abs(-py - y0) < NEAR and sid not in self.excluded:
                out.append((sid, px, -py, r[tc.VAR_ANGLE] - 90.0, r[tc.VAR_SPEED]))
        return out

    def _walkers(self, box: tuple[float, ...]) -> None:
        person = self.sumo.person
        near = self._near(person.getAllSubscriptionResults(), box)
        if not near and not self.held_walkers:
            return
        ids = [n[0] for n in near]
        pos = np.array([n[1:3] for n in near]).reshape(-1, 2)
        yaw = np.array([n[3] for n in near])
        # a held walker keeps the speed it had; one waiting at a kerb may start at its walking speed
        speed = np.array([self.held_walkers.get(n[0], n[4] if n[4] > 0.2 else person.getMaxSpeed(n[0])) for n in near])
        # a walker's position is its centre: the strip starts at its front
        a = np.radians(yaw)
        fx = pos[:, 0] + PEDESTRIAN_HALF_LENGTH * np.cos(a)
        fy = pos[:, 1] + PEDESTRIAN_HALF_LENGTH * np.sin(a)
        course = on_collision_course(box, fx, fy, yaw, np.full(len(ids), PEDESTRIAN_HALF_WIDTH),
                                     speed * WALKER_LOOKAHEAD)
        held: dict[str, float] = {}
        for i, sid in enumerate(ids):
            if course[i]:
                if sid not in self.held_walkers:
                    self.holds += 1
                    person.setSpeed(sid, 0.0)
                held[sid] = float(speed[i])
        for sid, walking in self.held_walkers.items():
            if sid not in held and sid in ids:
                person.setSpeed(sid, walking)
        self.held_walkers = held

    def _vehicles(self, box: tuple[float, ...]) -> None:
        vehicle = self.sumo.vehicle
        near = self._near(vehicle.getAllSubscriptionResults(), box)
        if not near and not self.held_vehicles:
            return
        ids = [n[0] for n in near]
        front = np.array([n[1:3] for n in near]).reshape(-1, 2)  # SUMO reports the front bumper
        yaw = np.array([n[3] for n in near])
        speed = np.array([n[4] for n in near])
        half_width = np.array([0.5 * vehicle.getWidth(sid) for sid in ids])
        reach = speed * speed / (2.0 * VEHICLE_DECEL) + VEHICLE_REACH
        course = on_collision_course(box, front[:, 0], front[:, 1], yaw, half_width, reach)
        held = {sid for i, sid in enumerate(ids) if course[i]}
        self.holds += len(held - self.held_vehicles)
        for sid in held:  # every step: another speed setter (pacing.py) may have written it since
            vehicle.setSpeed(sid, 0.0)
        for sid in (self.held_vehicles - held) & set(ids):
            vehicle.setSpeed(sid, -1.0)
        self.held_vehicles = held
