"""OutsideRouteLanesTest: the share of the driven route spent off the driving lanes or in a lane of
the opposite direction.

Per tick, with ``wp`` the nearest Driving waypoint of ``carla.Map``:
- *outside lanes*: distance to the nearest Driving (or Parking) lane centre > lane_width / 2 +
  0.5 m (1.3 m in 1.0);
- *wrong lane*: never inside junctions; on a change of (road, lane) right after a junction, the
  lane's heading differs from the ego's by more than 120 degrees; on a change elsewhere, the lane
  heading jumped by more than 150 degrees from the previous lane (toggles: going out / coming back).
Distance is counted per route point passed (window of 3 ahead); the event carries
``wrong_distance / total_distance * 100``.
"""

from __future__ import annotations

from typing import Any

import carla

from driving.criteria.events import OUTSIDE_LANES, CriteriaParams, InfractionEvent
from driving.criteria.route import RouteGeometry
from driving.types import WorldTick

MAX_VEHICLE_ANGLE = 120.0
MAX_WAYPOINT_ANGLE = 150.0
WINDOW = 3


class OutsideRouteLanesCriterion:
    """OutsideRouteLanesTest for one route (see the module docstring)."""

    def __init__(self, geometry: RouteGeometry, carla_map: Any, params: CriteriaParams) -> None:
        self.g = geometry
        self.map = carla_map
        self.p = params
        self.index = 0
        self.total_distance = 0.0
        self.wrong_distance = 0.0
        self.outside_active = False
        self.wrong_lane_active = False
        start = geometry.xyz[0]
        self._last_wp = carla_map.get_waypoint(
            carla.Location(float(start[0]), float(start[1]), float(start[2])), project_to_road=True,
            lane_type=carla.LaneType.Driving)
        self._last_road: int | None = None
        self._last_lane: int | None = None
        self._has_parking = True
        self._last_tick: WorldTick | None = None

    def update(self, tick: WorldTick, location: carla.Location, driving_wp: Any) -> None:
        """``driving_wp``: ``map.get_waypoint(location, lane_type=Driving)``, shared with other criteria."""
        self._last_tick = tick
        if driving_wp is not None:
            self._check_outside(location, driving_wp)
            self._check_wrong_lane(tick, driving_wp)
        active = self.outside_active or self.wrong_lane_active
        x, y = tick.ego.x, tick.ego.y
        for i in range(self.index + 1, min(self.index + WINDOW + 1, self.g.n)):
            if self.g.passed(i, x, y):
                a, b = self.g.xyz[self.index], self.g.xyz[i]
                d = float(((a - b) ** 2).sum() ** 0.5)
                self.total_distance += d
                if active:
                    self.wrong_distance += d
                self.index = i

    @property
    def percentage(self) -> float:
        return self.wrong_distance / self.total_distance * 100 if self.total_distance > 0 else 0.0

    def finish(self) -> list[InfractionEvent]:
        """The single event of the route (if any distance was driven outside)."""
        if self.wrong_distance <= 0 or self._last_tick is None:
            return []
        pct = self.percentage
        t = self._last_tick
        return [InfractionEvent(
            kind=OUTSIDE_LANES, frame=t.frame, time=t.time, x=t.ego.x, y=t.ego.y, value=pct,
            message=f"Agent went outside its route lanes for about {round(self.wrong_distance, 3)} meters "
            f"({round(pct, 2)}% of the completed route)")]

    def _check_outside(self, location: carla.Location, driving_wp: Any) -> None:
        distance = location.distance(driving_wp.transform.location)
        lane_width = driving_wp.lane_width
        if self._has_parking:
            parking_wp = self.map.get_waypoint(location, project_to_road=True, lane_type=carla.LaneType.Parking)
            if parking_wp is None:
                self._has_parking = False  # towns without parking lanes never have one
            else:
                parking_distance = location.distance(parking_wp.transform.location)
                if distance >= parking_distance:
                    distance, lane_width = parking_distance, parking_wp.lane_width
        self.outside_active = bool(distance > lane_width / 2 + self.p.allowed_out_distance)

    def _check_wrong_lane(self, tick: WorldTick, wp: Any) -> None:
        road, lane = wp.road_id, wp.lane_id
        if wp.is_junction:
            self.wrong_lane_active = False
        elif self._last_road != road or self._last_lane != lane:
            if self._last_wp is not None and self._last_wp.is_junction:
                angle = (wp.transform.rotation.yaw % 360 - tick.ego.yaw % 360) % 360
                self.wrong_lane_active = not (angle < MAX_VEHICLE_ANGLE or angle > 360 - MAX_VEHICLE_ANGLE)
            elif self._last_wp is not None:
                angle = (self._last_wp.transform.rotation.yaw % 360 - wp.transform.rotation.yaw % 360) % 360
                if self.p.wrong_lane_inclusive:  # 1.0
                    if MAX_WAYPOINT_ANGLE <= angle <= 360 - MAX_WAYPOINT_ANGLE:
                        self.wrong_lane_active = not self.wrong_lane_active
                    else:
                        self.wrong_lane_active = False
                elif MAX_WAYPOINT_ANGLE < angle < 360 - MAX_WAYPOINT_ANGLE:
                    self.wrong_lane_active = not self.wrong_lane_active
        self._last_road, self._last_lane, self._last_wp = road, lane, wp
