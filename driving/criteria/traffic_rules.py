"""RunningRedLightTest and RunningStopTest on the map's stop lines (``driving.signals.StopLine``).

Red light (both versions): the ego "tail segment", from ``0.8 * half_length`` to ``half_length + 1 m``
behind its centre, crosses the stop line of a red light: the line spans ``0.6 * lane_width``
(``0.4`` in 1.0) either side of the lane's stop-line point; the light's centre must be within 15 m
of the ego, the tail's far point on the stop line's lane, the ego heading along the lane. One
*light* is never counted twice in a row. Our towns have one landmark per SUMO link
(``<tls>_<link>``); a leaderboard traffic light governs a whole approach, so the landmarks of one
road at one junction form one light here, and a lane's state is that of the link the route takes
out of the junction (if the ego is off-route: red only when every link of the lane is red).

Stop sign: the stop's trigger volume is a box on the lane just before its stop line
(``STOP_TRIGGER_HALF_LENGTH`` m long each side of a centre ``STOP_TRIGGER_OFFSET`` m upstream,
half a lane wide). 2.x: the ego is affected while its lane waypoint is within 4 m of the box
centre and one of its waypoints (ego, then 0.5 m steps to 4 m ahead) is in the box scaled by
1.2; leaving it without ever dropping below 0.1 m/s is an infraction, not repeated for the same
stop twice in a row; reversing or driving against the lane ignores stops. 1.0: 50 m proximity, 20
waypoints at 1 m, unscaled box, and only counted if the ego's centre was inside the box.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import carla
import numpy as np

from driving.criteria.events import RED_LIGHT, STOP, CriteriaParams, InfractionEvent, location_text
from driving.geometry import point_in_box, segments_intersect
from driving.types import Route, WorldTick

STOP_TRIGGER_HALF_LENGTH = 1.5  # m, half length of a stop's trigger box along the lane
STOP_TRIGGER_OFFSET = 1.5  # m, box centre upstream of the stop line


@dataclass
class _LightLane:
    line: Any  # StopLine of one link (the lane's geometry is the same for all its links)
    links: list[Any]  # all StopLines of this lane at this junction
    route_link: Any | None  # the link the route takes, if the lane is on the route


@dataclass
class _Light:
    id: str
    centre: tuple[float, float]
    lanes: list[_LightLane]


def _route_exit_roads(route: Route) -> dict[tuple[int, int], set[int]]:
    """For every (road, lane) of the route right before a junction, the road the route enters after it."""
    exits: dict[tuple[int, int], set[int]] = defaultdict(set)
    dense = route.dense
    for i, w in enumerate(dense[:-1]):
        if w.is_junction or not dense[i + 1].is_junction:
            continue
        j = i + 1
        while j < len(dense) and dense[j].is_junction:
            j += 1
        if j < len(dense):
            exits[(w.road_id, w.lane_id)].add(dense[j].road_id)
            # the connector road itself, for stop lines whose to_road_id names it
            exits[(w.road_id, w.lane_id)].add(dense[i + 1].road_id)
    return exits


class RedLightCriterion:
    """RunningRedLightTest (see the module docstring)."""

    def __init__(self, stop_lines: Sequence[Any], route: Route, carla_map: Any, params: CriteriaParams) -> None:
        self.map = carla_map
        self.p = params
        self.last_light: str | None = None
        self._tail_key: tuple[float, float] | None = None
        self._clear_from = (0.0, 0.0, -math.inf)  # (x, y, m): no light within reach while closer than m
        self._tail_wp: Any = None
        exits = _route_exit_roads(route)
        groups: dict[tuple[str, int], dict[int, list[Any]]] = defaultdict(lambda: defaultdict(list))
        for sl in stop_lines:
            if sl.kind != "traffic_light":
                continue
            tls = sl.tls_id if sl.tls_id is not None else sl.id.rsplit("_", 1)[0]
            groups[(tls, sl.road_id)][sl.lane_id].append(sl)
        self.lights: list[_Light] = []
        for (tls, road), lanes in groups.items():
            light_lanes = []
            for lane_id, links in lanes.items():
                targets = exits.get((road, lane_id), set())
                match = [sl for sl in links if sl.to_road_id is not None and sl.to_road_id in targets]
                light_lanes.append(_LightLane(line=links[0], links=links, route_link=match[0] if match else None))
            cx = float(np.mean([ll.line.x for ll in light_lanes]))
            cy = float(np.mean([ll.line.y for ll in light_lanes]))
            self.lights.append(_Light(id=f"{tls}@{road}", centre=(cx, cy), lanes=light_lanes))
        self._centres = np.array([lt.centre for lt in self.lights]).reshape(-1, 2)

    def _lane_is_red(self, lane: _LightLane, states: dict[str, str]) -> bool:
        if lane.route_link is not None:
            return states.get(lane.route_link.id) == "red"
        return all(states.get(sl.id) == "red" for sl in lane.links)

    def update(self, tick: WorldTick) -> list[InfractionEvent]:
        if not self.lights:
            return []
        ego = tick.ego
        # Skip the distance test while no light can have come within reach: the nearest light was
        # ``_clear_by`` metres beyond it at the last test, and the ego moved less than that since
        # (triangle inequality; a 0.5 m margin covers rounding).
        ax, ay, clear_by = self._clear_from
        if math.hypot(ego.x - ax, ego.y - ay) < clear_by:
            return []
        dist = np.hypot(self._centres[:, 0] - ego.x, self._centres[:, 1] - ego.y)
        near = np.flatnonzero(dist <= self.p.light_distance)
        if near.size == 0:
            self._clear_from = (ego.x, ego.y, float(dist.min()) - self.p.light_distance - 0.5)
            return []
        c, s = math.cos(math.radians(ego.yaw)), math.sin(math.radians(ego.yaw))
        close = (ego.x - 0.8 * ego.half_length * c, ego.y - 0.8 * ego.half_length * s)
        far = (ego.x - (ego.half_length + 1) * c, ego.y - (ego.half_length + 1) * s)
        tail_wp = None
        events: list[InfractionEvent] = []
        for k in near:
            light = self.lights[int(k)]
            if self.last_light == light.id:
                continue
            for lane in light.lanes:
                if not self._lane_is_red(lane, tick.light_states):
                    continue
                if tail_wp is None:
                    if self._tail_key != far:  # a stopped ego asks for the same point every tick
                        self._tail_key = far
                        self._tail_wp = self.map.get_waypoint(carla.Location(far[0], far[1], 0.0),
                                                              project_to_road=True)
                    tail_wp = self._tail_wp
                    if tail_wp is None:
                        return events
                sl = lane.line
                lc, ls = math.cos(math.radians(sl.yaw)), math.sin(math.radians(sl.yaw))
                if not (tail_wp.road_id == sl.road_id and tail_wp.lane_id == sl.lane_id and c * lc + s * ls > 0):
                    continue
                half = self.p.stop_line_half_width_factor * 2 * sl.half_width
                left = (sl.x + half * ls, sl.y - half * lc)
                right = (sl.x - half * ls, sl.y + half * lc)
                if segments_intersect(close, far, left, right):
                    link = lane.route_link or lane.line
                    events.append(InfractionEvent(
                        kind=RED_LIGHT, frame=tick.frame, time=tick.time, x=ego.x, y=ego.y,
                        message=f"Agent ran a red light {link.id} at {location_text(sl.x, sl.y)}"))
                    self.last_light = light.id
                    break
        return events


class StopSignCriterion:
    """RunningStopTest (see the module docstring)."""

    def __init__(self, stop_lines: Sequence[Any], carla_map: Any, params: CriteriaParams) -> None:
        self.map = carla_map
        self.p = params
        self.stops = [sl for sl in stop_lines if sl.kind == "stop"]
        # trigger-box centres, upstream of each stop line along its lane
        self._centres = np.array([
            (sl.x - STOP_TRIGGER_OFFSET * math.cos(math.radians(sl.yaw)),
             sl.y - STOP_TRIGGER_OFFSET * math.sin(math.radians(sl.yaw))) for sl in self.stops
        ]).reshape(-1, 2)
        self.target: int | None = None
        self.stop_completed = False
        self.centre_inside = False  # 1.0 only: the ego's centre entered the box
        self.last_failed: str | None = None
        # how far from a trigger centre the ego can be and still be affected
        self._reach = params.stop_proximity + (
            params.stop_waypoint_step * params.stop_waypoint_count + 10.0 if params.version != "1.0" else 5.0)

    def _in_box(self, k: int, x: float, y: float) -> bool:
        sl = self.stops[k]
        m = self.p.stop_box_multiplier
        return point_in_box(x, y, self._centres[k, 0], self._centres[k, 1], sl.yaw,
                            m * STOP_TRIGGER_HALF_LENGTH, m * sl.half_width)

    def _waypoints(self, tick: WorldTick) -> list[Any]:
        wp = self.map.get_waypoint(carla.Location(tick.ego.x, tick.ego.y, 0.0), project_to_road=True)
        if wp is None:
            return []
        wps = [wp]
        for _ in range(self.p.stop_waypoint_count):
            nxt = wps[-1].next(self.p.stop_waypoint_step)
            if not nxt:
                break
            wps.append(nxt[0])
        return wps

    def _affected(self, k: int, tick: WorldTick, wps: list[Any]) -> bool:
        if not wps:
            return False
        if self.p.version == "1.0":
            ref = (tick.ego.x, tick.ego.y)  # 1.0 measures from the actor
            points = [ref] + [(w.transform.location.x, w.transform.location.y) for w in wps[1:]]
        else:
            loc0 = wps[0].transform.location
            ref = (loc0.x, loc0.y)
            points = [(w.transform.location.x, w.transform.location.y) for w in wps]
        if math.hypot(self._centres[k, 0] - ref[0], self._centres[k, 1] - ref[1]) > self.p.stop_proximity:
            return False
        return any(self._in_box(k, px, py) for px, py in points)

    def _scan(self, tick: WorldTick, wps: list[Any]) -> int | None:
        if not wps:
            return None
        ego = tick.ego
        c, s = math.cos(math.radians(ego.yaw)), math.sin(math.radians(ego.yaw))
        lane_fwd = wps[0].transform.get_forward_vector()
        lane_dot = c * lane_fwd.x + s * lane_fwd.y
        if self.p.version == "1.0":
            if lane_dot <= 0:
                return None
        elif ego.speed < -0.17 or lane_dot < -0.17:  # reversing, or against the lane (~100 degrees)
            return None
        for k in range(len(self.stops)):
            if self._affected(k, tick, wps):
                return k
        return None

    def update(self, tick: WorldTick) -> list[InfractionEvent]:
        if not self.stops:
            return []
        ego = tick.ego
        if self.target is None:
            d = np.hypot(self._centres[:, 0] - ego.x, self._centres[:, 1] - ego.y)
            if float(d.min()) > self._reach:
                return []
            self.target = self._scan(tick, self._waypoints(tick))
            return []
        k = self.target
        if not self.stop_completed and abs(ego.speed) < self.p.stop_speed:
            self.stop_completed = True
        if self.p.version == "1.0" and not self.centre_inside and self._in_box(k, ego.x, ego.y):
            self.centre_inside = True
        events: list[InfractionEvent] = []
        if not self._affected(k, tick, self._waypoints(tick)):
            sl = self.stops[k]
            counts = self.centre_inside if self.p.version == "1.0" else self.last_failed != sl.id
            if not self.stop_completed and counts:
                events.append(InfractionEvent(
                    kind=STOP, frame=tick.frame, time=tick.time, x=ego.x, y=ego.y,
                    message=f"Agent ran a stop with id={sl.id} at {location_text(sl.x, sl.y)}"))
                self.last_failed = sl.id
            self.target = None
            self.stop_completed = False
            self.centre_inside = False
        return events
