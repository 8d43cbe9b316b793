"""Contracts shared by the driving packages: route types, the control, world ground truth, World API.

Frames and units as in ``driving.scene`` (CARLA world frame, metres, degrees, m/s).
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from driving.scene import Scene


class RoadOption(enum.IntEnum):
    """The leaderboard's RoadOption values (agents.navigation.local_planner.RoadOption)."""

    VOID = -1
    LEFT = 1
    RIGHT = 2
    STRAIGHT = 3
    LANEFOLLOW = 4
    CHANGELANELEFT = 5
    CHANGELANERIGHT = 6


@dataclass(frozen=True)
class Keypoint:
    """A route keypoint as written in leaderboard route XML (world frame; yaw in degrees)."""

    x: float
    y: float
    z: float = 0.0
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0


@dataclass(frozen=True)
class RouteWaypoint:
    """One point of the dense route (~1 m apart), with the lane it lies on in the OpenDRIVE map."""

    x: float
    y: float
    z: float
    yaw: float
    road_option: RoadOption
    road_id: int
    lane_id: int
    s: float
    is_junction: bool = False


@dataclass
class Route:
    """A leaderboard route: keypoints from the XML plus the dense route the planner traced."""

    id: str
    town: str
    keypoints: list[Keypoint]
    dense: list[RouteWaypoint] = field(default_factory=list)
    weather: dict[str, Any] = field(default_factory=dict)
    scenarios: list[dict[str, Any]] = field(default_factory=list)

    @property
    def length(self) -> float:
        """Length of the dense route, m."""
        import math

        return sum(
            math.hypot(b.x - a.x, b.y - a.y) for a, b in zip(self.dense, self.dense[1:], strict=False)
        )


@dataclass
class VehicleControl:
    """The fields of ``carla.VehicleControl`` (same names, ranges and defaults)."""

    throttle: float = 0.0  # [0, 1]
    steer: float = 0.0  # [-1, 1], positive = right
    brake: float = 0.0  # [0, 1]
    hand_brake: bool = False
    reverse: bool = False
    manual_gear_shift: bool = False
    gear: int = 0

    def clipped(self) -> VehicleControl:
        return VehicleControl(
            throttle=min(max(float(self.throttle), 0.0), 1.0),
            steer=min(max(float(self.steer), -1.0), 1.0),
            brake=min(max(float(self.brake), 0.0), 1.0),
            hand_brake=bool(self.hand_brake),
            reverse=bool(self.reverse),
            manual_gear_shift=bool(self.manual_gear_shift),
            gear=int(self.gear),
        )


@dataclass(frozen=True)
class ActorBox:
    """Ground-truth oriented box of an actor (world frame), as used by collision geometry."""

    id: int
    kind: str  # 'ego' | 'vehicle' | 'pedestrian' | 'static'
    x: float
    y: float
    yaw: float
    half_length: float
    half_width: float
    speed: float  # signed forward speed, m/s


@dataclass
class WorldTick:
    """Ground truth after one world step, for criteria, recording and rendering.

    ``light_states`` maps every traffic-light landmark id ``<tlsID>_<linkIndex>`` of the town to
    'red' | 'yellow' | 'green' | 'off'. Stop signs are static map features (signal type 206).
    """

    frame: int
    time: float  # simulated seconds since reset
    ego: ActorBox
    control: VehicleControl  # the control applied during the step that led here
    actors: list[ActorBox]  # every other actor (vehicles, pedestrians incl. scripted jaywalkers)
    light_states: dict[str, str]
    ego_acceleration: float = 0.0


class World(ABC):
    """One interface for the embedded world and the CARLA adapter. 20 Hz fixed step."""

    dt: float = 0.05

    @abstractmethod
    def reset(self, route: Route, seed: int) -> Scene:
        """Start ``route`` with the ego at its first dense waypoint; deterministic under ``seed``."""

    @abstractmethod
    def step(self, control: VehicleControl) -> Scene:
        """Apply ``control`` for one ``dt`` and return the new Scene."""

    @abstractmethod
    def tick(self) -> WorldTick:
        """Ground truth of the current state (after the last reset/step)."""

    @property
    @abstractmethod
    def carla_map(self) -> Any:
        """The ``carla.Map`` of the current town."""

    @abstractmethod
    def close(self) -> None:
        """Release the simulator; idempotent."""

    def __enter__(self) -> World:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
