"""Infraction events and the per-version constants of the leaderboard's criteria.

The constants are those of scenario_runner's ``atomic_criteria.py`` and the leaderboard's
``route_scenario.py`` / ``timer.py`` on the leaderboard-1.0, leaderboard-2.0 and leaderboard-2.1
branches (2.0 and 2.1 share the criteria; they differ only in scoring, see ``driving.scoring``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# results.json infraction keys (the leaderboard's PENALTY_NAME_DICT values + 'route_timeout')
COLLISION_PEDESTRIAN = "collisions_pedestrian"
COLLISION_VEHICLE = "collisions_vehicle"
COLLISION_LAYOUT = "collisions_layout"
RED_LIGHT = "red_light"
STOP = "stop_infraction"
OUTSIDE_LANES = "outside_route_lanes"
ROUTE_DEVIATION = "route_dev"
BLOCKED = "vehicle_blocked"
ROUTE_TIMEOUT = "route_timeout"
MIN_SPEED = "min_speed_infractions"
YIELD_EMERGENCY = "yield_emergency_vehicle_infractions"
SCENARIO_TIMEOUT = "scenario_timeouts"

INFRACTION_KINDS = (
    COLLISION_PEDESTRIAN, COLLISION_VEHICLE, COLLISION_LAYOUT, RED_LIGHT, STOP, OUTSIDE_LANES,
    ROUTE_DEVIATION, BLOCKED, ROUTE_TIMEOUT, MIN_SPEED, YIELD_EMERGENCY, SCENARIO_TIMEOUT,
)

# Order of the criteria in the leaderboard's criteria tree: the statistics manager walks the nodes
# in this order, so messages in results.json and the failure reason follow it.
CRITERIA_ORDER = {
    OUTSIDE_LANES: 1, COLLISION_LAYOUT: 2, COLLISION_PEDESTRIAN: 2, COLLISION_VEHICLE: 2,
    RED_LIGHT: 3, STOP: 4, MIN_SPEED: 5, YIELD_EMERGENCY: 6, SCENARIO_TIMEOUT: 6,
    ROUTE_DEVIATION: 7, BLOCKED: 8, ROUTE_TIMEOUT: 0,
}

VERSIONS = ("1.0", "2.0", "2.1")


class UnknownVersionError(ValueError):
    """A leaderboard version other than 1.0, 2.0 or 2.1 was asked for."""


def check_version(version: str) -> str:
    """Normalise a leaderboard version string ('2', '2.0', 'master' -> '2.0'); raise if unknown."""
    v = str(version).strip()
    aliases = {"1": "1.0", "2": "2.0", "master": "2.0", "leaderboard-1.0": "1.0",
               "leaderboard-2.0": "2.0", "leaderboard-2.1": "2.1"}
    v = aliases.get(v, v)
    if v not in VERSIONS:
        raise UnknownVersionError(f"unknown leaderboard version {version!r}; expected one of {', '.join(VERSIONS)}")
    return v


@dataclass
class InfractionEvent:
    """One traffic event, as the leaderboard's TrafficEvent: a kind (results.json key) and a message."""

    kind: str
    frame: int
    time: float
    x: float
    y: float
    message: str
    value: float | None = None  # percentage for outside_route_lanes / min_speed_infractions
    actor_id: int | None = None

    def to_dict(self) -> dict:
        return {"kind": self.kind, "frame": self.frame, "time": self.time, "x": self.x, "y": self.y,
                "message": self.message, "value": self.value, "actor_id": self.actor_id}


@dataclass(frozen=True)
class CriteriaParams:
    """Thresholds of the leaderboard criteria for one version."""

    version: str
    # CollisionTest
    collision_id_time: float  # s: the same actor is ignored this long after a counted collision
    collision_radius: float  # m: collisions this close to a remembered one are ignored
    collision_forget_radius: float  # m: a remembered collision is forgotten this far away
    collision_min_speed: float  # m/s: below this ego speed a collision is not the ego's fault (0 = off)
    # OutsideRouteLanesTest
    allowed_out_distance: float
    wrong_lane_inclusive: bool  # 1.0 uses >= / <= on the 150 degree test and resets on same-direction lanes
    # RunningRedLightTest
    light_distance: float
    stop_line_half_width_factor: float  # stop line = centre -/+ factor * lane_width
    # RunningStopTest
    stop_proximity: float
    stop_waypoint_step: float
    stop_waypoint_count: int
    stop_box_multiplier: float
    # Route end conditions
    blocked_speed: float = 0.1
    blocked_time: float = 180.0
    offroad_max: float = 30.0
    offroad_max_percentage: float = 30.0
    completion_window: int = 2
    completion_distance: float = 10.0
    completion_percentage: float = 99.0
    stop_speed: float = 0.1
    # MinimumSpeedRouteTest (2.x) averages the speed of the *background* vehicles. In the leaderboard
    # those are BackgroundActivity's, kept around the ego: its road vehicles drive on within
    # (front vehicles 2 + 1) x 15 m spawn distance + 1.7 m per m/s of ego speed and are stopped
    # beyond (scenario_runner leaderboard-2.0 background_activity.py, _get_road_radius /
    # _set_road_actor_speed). A SUMO world keeps traffic everywhere, so only the vehicles within that
    # radius of the ego count. None = every vehicle of the world.
    background_radius: float | None = 45.0
    background_radius_per_speed: float = 1.7  # m per m/s of ego speed

    def background_reach(self, ego_speed: float) -> float:
        """Radius (m) around the ego within which vehicles count as background traffic (inf: all)."""
        if self.background_radius is None:
            return math.inf
        return self.background_radius + self.background_radius_per_speed * abs(ego_speed)


PARAMS: dict[str, CriteriaParams] = {
    "1.0": CriteriaParams(
        version="1.0", collision_id_time=5.0, collision_radius=3.0, collision_forget_radius=5.0,
        collision_min_speed=0.0, allowed_out_distance=1.3, wrong_lane_inclusive=True,
        light_distance=15.0, stop_line_half_width_factor=0.4,
        stop_proximity=50.0, stop_waypoint_step=1.0, stop_waypoint_count=20, stop_box_multiplier=1.0,
    ),
    "2.0": CriteriaParams(
        version="2.0", collision_id_time=5.0, collision_radius=5.0, collision_forget_radius=5.0,
        collision_min_speed=0.1, allowed_out_distance=0.5, wrong_lane_inclusive=False,
        light_distance=15.0, stop_line_half_width_factor=0.6,
        stop_proximity=4.0, stop_waypoint_step=0.5, stop_waypoint_count=8, stop_box_multiplier=1.2,
    ),
}
PARAMS["2.1"] = CriteriaParams(**{**PARAMS["2.0"].__dict__, "version": "2.1"})


def location_text(x: float, y: float, z: float = 0.0) -> str:
    """The leaderboard's location suffix: ``(x=1.234, y=5.678, z=0.0)``."""
    return f"(x={round(x, 3)}, y={round(y, 3)}, z={round(z, 3)})"
