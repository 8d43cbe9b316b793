"""Actors we script ourselves: jaywalkers, static props and placed (held) SUMO vehicles.

SUMO vehicles ignore persons moved by TraCI, so scenario pedestrians that cross mid-block are
simulated here with straight-line kinematics; the world reports them like any pedestrian and our
own box check sees them. Static props only exist in our geometry (layout collisions). Placed
vehicles are real SUMO vehicles pinned to a pose each step, so SUMO traffic reacts to them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from driving.worlds.embedded.traffic import PEDESTRIAN_HALF_LENGTH, PEDESTRIAN_HALF_WIDTH


@dataclass
class Jaywalker:
    actor_id: int
    x: float
    y: float
    yaw: float  # degrees, walking direction
    speed: float  # m/s once walking
    start_time: float  # s after reset; walking starts then (or earlier on the trigger)
    trigger_distance: float | None = None  # start when the ego's centre is this close, m
    walk_distance: float = 20.0  # stops after walking this far, m
    walked: float = 0.0
    walking: bool = False

    def step(self, now: float, dt: float, ego_x: float, ego_y: float) -> None:
        if not self.walking and self.walked < self.walk_distance:
            near = (self.trigger_distance is not None
                    and math.hypot(ego_x - self.x, ego_y - self.y) <= self.trigger_distance)
            self.walking = now >= self.start_time or near
        if not self.walking:
            return
        step = min(self.speed * dt, self.walk_distance - self.walked)
        a = math.radians(self.yaw)
        self.x += step * math.cos(a)
        self.y += step * math.sin(a)
        self.walked += step
        if self.walked >= self.walk_distance - 1e-9:
            self.walking = False

    @property
    def current_speed(self) -> float:
        return self.speed if self.walking else 0.0


@dataclass(frozen=True)
class StaticProp:
    actor_id: int
    x: float
    y: float
    yaw: float
    half_length: float
    half_width: float


@dataclass
class PlacedVehicle:
    """A SUMO vehicle pinned to a pose that moves straight at ``speed`` (0: parked)."""

    actor_id: int
    sumo_id: str
    x: float
    y: float
    yaw: float
    speed: float
    half_length: float
    half_width: float

    def advance(self, dt: float) -> None:
        a = math.radians(self.yaw)
        self.x += self.speed * dt * math.cos(a)
        self.y += self.speed * dt * math.sin(a)

    def sync(self, sumo: Any) -> None:
        """Pin the SUMO vehicle at this pose (front bumper, SUMO frame and angle)."""
        a = math.radians(self.yaw)
        fx, fy = self.x + self.half_length * math.cos(a), self.y + self.half_length * math.sin(a)
        sumo.vehicle.moveToXY(self.sumo_id, "", -1, fx, -fy, self.yaw + 90.0, keepRoute=2)


class ScriptedActors:
    """Jaywalkers and static props of the episode, as state arrays for the world's actor table."""

    def __init__(self) -> None:
        self.jaywalkers: list[Jaywalker] = []
        self.statics: list[StaticProp] = []
        self.placed: list[PlacedVehicle] = []

    def step(self, now: float, dt: float, ego_x: float, ego_y: float) -> None:
        for walker in self.jaywalkers:
            walker.step(now, dt, ego_x, ego_y)

    def rows(self) -> tuple[list[int], list[int], np.ndarray]:
        """ids, kinds (1 pedestrian, 2 static) and (N, 6) rows of x, y, yaw, speed, hl, hw."""
        ids = [w.actor_id for w in self.jaywalkers] + [p.actor_id for p in self.statics]
        kinds = [1] * len(self.jaywalkers) + [2] * len(self.statics)
        vals = [(w.x, w.y, w.yaw, w.current_speed, PEDESTRIAN_HALF_LENGTH, PEDESTRIAN_HALF_WIDTH)
                for w in self.jaywalkers]
        vals += [(p.x, p.y, p.yaw, 0.0, p.half_length, p.half_width) for p in self.statics]
        return ids, kinds, (np.array(vals, dtype=float) if vals else np.zeros((0, 6)))
