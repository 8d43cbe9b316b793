"""Route planner on the carla.Map lane topology (the agents package's GlobalRoutePlanner, rebuilt).

Graph: driving lane sections ``(road, section, lane)`` with edges to successor lanes (from
``get_topology()``, whose pairs are (lane start, successor-lane start) — so lanes without successors
still appear, as targets) and lane-change edges to same-direction neighbours outside junctions where
the road marks allow it. Search states are (lane, changes made in a row) so a lane change is only
offered where the lane has room left for it. A* (networkx) weights: the source lane's length for lane
following, a small constant for a lane change. A keypoint inside a junction may match several
overlapping connectors; the combination giving the shortest route through all keypoints wins. Dense points are sampled ~``resolution`` m apart straight from the lane
geometry (``get_waypoint_xodr``), so consecutive lanes join without gaps; a lane change blends
laterally from one lane to its neighbour over ``LANE_CHANGE_LENGTH`` metres instead of jumping.

Labels follow the leaderboard: LANEFOLLOW outside junctions, STRAIGHT / LEFT / RIGHT on junction
connectors (deviation < 33° is straight, else by the sign of the turn), CHANGELANELEFT / RIGHT on
lane-change points. Nothing here calls ``next_until_lane_end`` / ``previous_until_lane_start``.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

import carla
import networkx as nx

from driving.types import Keypoint, RoadOption, Route, RouteWaypoint

LaneKey = tuple[int, int, int]  # (road_id, section_id, lane_id)

STRAIGHT_THRESHOLD_DEG = 33.0
UTURN_THRESHOLD_DEG = 165.0
LANE_CHANGE_COST = 5.0  # m; >0 so the search never weaves between lanes for free
LANE_CHANGE_LENGTH = 8.0  # m of lateral blend
LANE_CHANGE_MIN_LANE = 12.0  # m; shorter lanes offer no lane change
LANE_CHANGE_LEAD = 1.0  # m followed on the old lane before blending
MAX_CHANGES = 2  # lane changes in a row within one lane section (enough for 3 lanes)
_CHANGE_ROOM = LANE_CHANGE_LENGTH + LANE_CHANGE_LEAD
_TARGET = ("T",)
MAX_SNAP = 10.0  # m; a keypoint farther than this from every driving lane is an error
JUNCTION_SNAP = 1.0  # m; connectors this close to a keypoint inside a junction are candidates
MAX_CANDIDATES = 4


class NoRouteError(ValueError):
    """No drivable path joins two keypoints (or a keypoint is off every driving lane)."""


@dataclass
class Lane:
    """One driving lane section of the map as a graph node (s_start → s_end is the travel direction)."""

    key: LaneKey
    s_start: float  # s where travel starts (section start for right lanes, end for left lanes)
    s_end: float
    is_junction: bool
    start_xy: tuple[float, float]
    end_xy: tuple[float, float]
    start_yaw: float = 0.0
    end_yaw: float = 0.0
    option: RoadOption = RoadOption.LANEFOLLOW

    @property
    def length(self) -> float:
        return abs(self.s_end - self.s_start)

    def direction(self) -> float:
        return 1.0 if self.s_end >= self.s_start else -1.0


def _wrap(angle: float) -> float:
    return (angle + 180.0) % 360.0 - 180.0


def turn_option(entry_yaw: float, exit_yaw: float) -> RoadOption:
    """STRAIGHT if the heading changes by < 33°, else LEFT / RIGHT (carla yaw grows clockwise)."""
    delta = _wrap(exit_yaw - entry_yaw)
    if abs(delta) < STRAIGHT_THRESHOLD_DEG:
        return RoadOption.STRAIGHT
    if abs(delta) > UTURN_THRESHOLD_DEG:
        return RoadOption.LEFT  # a U-turn (right-hand traffic); the sign of ~180° is noise
    return RoadOption.RIGHT if delta > 0 else RoadOption.LEFT


def _section_ranges(xodr_text: str) -> dict[tuple[int, int], tuple[float, float]]:
    """(road, section index) → (s_begin, s_end) from the OpenDRIVE text."""
    out: dict[tuple[int, int], tuple[float, float]] = {}
    for road in ET.fromstring(xodr_text).iter("road"):
        rid, length = int(road.get("id", "-1")), float(road.get("length", "0"))
        starts = [float(ls.get("s", "0")) for ls in road.iter("laneSection")]
        for i, s0 in enumerate(starts):
            out[(rid, i)] = (s0, starts[i + 1] if i + 1 < len(starts) else length)
    return out


class RoutePlanner:
    """A* route planner over a ``carla.Map``; ``trace`` gives dense labelled waypoints."""

    def __init__(self, carla_map: Any, resolution: float = 1.0) -> None:
        self.map = carla_map
        self.resolution = float(resolution)
        self._ranges = _section_ranges(carla_map.to_opendrive())
        self.lanes: dict[LaneKey, Lane] = {}
        self.graph = nx.DiGraph()
        self._lock = threading.Lock()
        self._build()

    # ------------------------------------------------------------------ graph
    def waypoint(self, key: LaneKey, s: float) -> carla.Waypoint | None:
        """The map waypoint of lane ``key`` at ``s`` (clamped just inside the lane section)."""
        s0, s1 = self._ranges[(key[0], key[1])]
        return self.map.get_waypoint_xodr(key[0], key[2], min(max(s, s0 + 1e-3), s1 - 1e-3))

    def _lane(self, wp: carla.Waypoint) -> Lane:
        key = (wp.road_id, wp.section_id, wp.lane_id)
        lane = self.lanes.get(key)
        if lane is None:
            s0, s1 = self._ranges[(key[0], key[1])]
            start, end = (s0, s1) if key[2] < 0 else (s1, s0)
            a, b = self.waypoint(key, start) or wp, self.waypoint(key, end) or wp
            lane = Lane(key, start, end, wp.is_junction, _xy(a), _xy(b), a.transform.rotation.yaw,
                         b.transform.rotation.yaw)
            self.lanes[key] = lane
        return lane

    def _build(self) -> None:
        # Search nodes are (lane, k): k = lane changes made in a row within this lane section, so the
        # room a further change needs can be checked (see weight() in _search_locked). Follow edges reset k.
        follows: list[tuple[LaneKey, LaneKey]] = []
        for entry, successor in self.map.get_topology():
            a, b = self._lane(entry), self._lane(successor)
            if a.key != b.key:
                follows.append((a.key, b.key))
        # Turn labels as the leaderboard planner: heading at the end of the lane entering the junction
        # vs heading at the end of the connector (connector geometry alone can be a misleading chord).
        entering = {b: a for a, b in sorted(follows) if not self.lanes[a].is_junction}
        for key, lane in self.lanes.items():
            if lane.is_junction:
                before = self.lanes.get(entering.get(key, key), lane)
                lane.option = turn_option(before.end_yaw if before is not lane else lane.start_yaw, lane.end_yaw)
        changes: list[tuple[LaneKey, LaneKey, RoadOption]] = []
        for lane in list(self.lanes.values()):
            if lane.is_junction or lane.length < LANE_CHANGE_MIN_LANE:
                continue
            wp = self.waypoint(lane.key, (lane.s_start + lane.s_end) / 2.0)
            allowed = str(wp.lane_change)
            for side, option, neighbour in (
                ("Left", RoadOption.CHANGELANELEFT, wp.get_left_lane()),
                ("Right", RoadOption.CHANGELANERIGHT, wp.get_right_lane()),
            ):
                if neighbour is None or neighbour.lane_type != carla.LaneType.Driving:
                    continue
                if neighbour.lane_id * lane.key[2] <= 0 or allowed not in (side, "Both"):
                    continue  # opposite direction, or the road marks forbid it
                changes.append((lane.key, self._lane(neighbour).key, option))
        for key in self.lanes:
            for k in range(MAX_CHANGES + 1):
                self.graph.add_node((key, k))
        for a, b in follows:
            for k in range(MAX_CHANGES + 1):
                self.graph.add_edge((a, k), (b, 0), weight=self.lanes[a].length, kind="follow")
        for a, b, option in changes:
            for k in range(MAX_CHANGES):
                self.graph.add_edge((a, k), (b, k + 1), weight=LANE_CHANGE_COST, kind="change", option=option)

    def successors(self, key: LaneKey) -> list[LaneKey]:
        """Lanes reachable from ``key`` by following it (no lane change)."""
        return [v[0] for v, d in self.graph[(key, 0)].items() if d["kind"] == "follow"]

    def predecessors(self, key: LaneKey) -> list[LaneKey]:
        """Lanes that lead into ``key`` (no lane change)."""
        return sorted({u[0] for u, _, d in self.graph.in_edges((key, 0), data=True) if d["kind"] == "follow"})

    # ------------------------------------------------------------------ search
    def _locate(self, point: Keypoint, what: str) -> list[tuple[Lane, float]]:
        """Candidate (lane, s) for a keypoint: one outside junctions, every close connector inside one."""
        wp = self.map.get_waypoint(carla.Location(x=point.x, y=point.y, z=point.z), project_to_road=True,
                                   lane_type=carla.LaneType.Driving)
        if wp is None or math.hypot(wp.transform.location.x - point.x, wp.transform.location.y - point.y) > MAX_SNAP:
            raise NoRouteError(f"{what} keypoint ({point.x:.1f}, {point.y:.1f}) is more than {MAX_SNAP:.0f} m "
                               f"from every driving lane")
        nearest = (self._lane(wp), float(wp.s))
        if not wp.is_junction:
            return [nearest]
        # Junction connectors overlap, so the nearest waypoint may sit on a neighbouring connector:
        # offer every connector passing close by and let the path cost choose (see _through).
        found = []
        for start, _ in wp.get_junction().get_waypoints(carla.LaneType.Driving):
            lane = self._lane(start)
            # every point of a lane is within half its (arc) length of one end: skip far connectors
            ends = min(math.hypot(x - point.x, y - point.y) for x, y in (lane.start_xy, lane.end_xy))
            if ends > 0.75 * lane.length + JUNCTION_SNAP:
                continue
            s, dist = self._project(lane, point)
            if dist <= JUNCTION_SNAP:
                found.append((dist, lane.key, lane, s))
        found.sort(key=lambda f: (f[0], f[1]))
        return [(lane, s) for _, _, lane, s in found[:MAX_CANDIDATES]] or [nearest]

    def _project(self, lane: Lane, point: Keypoint) -> tuple[float, float]:
        """(s, distance) of the point of ``lane`` nearest to ``point`` (sampled every 0.25 m)."""
        best = (lane.s_start, math.inf)
        for s in self._samples(lane.s_start, lane.s_end, step=0.25):
            loc = self.waypoint(lane.key, s).transform.location
            dist = math.hypot(loc.x - point.x, loc.y - point.y)
            if dist < best[1]:
                best = (s, dist)
        return best

    def _heuristic(self, u: Any, v: Any) -> float:
        if u == _TARGET or v != _TARGET:
            return 0.0
        a, b = self.lanes[u[1] if u[0] == "S" else u[0]].start_xy, self._target_xy
        return math.hypot(a[0] - b[0], a[1] - b[1])

    def _search(self, start: Lane, s0: float, end: Lane, s1: float) -> list[LaneKey]:
        """Lane keys from the start lane to the end lane (A* over (lane, k) states)."""
        if start.key == end.key and (s1 - s0) * start.direction() >= 0:
            return [start.key]
        with self._lock:  # the temporary nodes below live in the shared graph
            return self._search_locked(start, s0, end, s1)

    def _search_locked(self, start: Lane, s0: float, end: Lane, s1: float) -> list[LaneKey]:
        # Temporary nodes: ('S', lane, k) = on the start lane's section at s0 after k changes; _TARGET.
        source = ("S", start.key, 0)
        added: list[Any] = [_TARGET]
        self.graph.add_node(_TARGET)
        frontier = [source]
        while frontier:
            node = frontier.pop()
            added.append(node)
            self.graph.add_node(node)
            _, key, k = node
            for (v, vk), data in list(self.graph[(key, k)].items()):
                if data["kind"] == "change":
                    nxt = ("S", v, vk)
                    frontier.append(nxt)
                    self.graph.add_edge(node, nxt, **data)
                else:
                    self.graph.add_edge(node, (v, vk), **data)
            if key == end.key and (s1 - s0 - k * _CHANGE_ROOM * end.direction()) * end.direction() >= 0:
                self.graph.add_edge(node, _TARGET, weight=0.0, kind="end")
        for k in range(MAX_CHANGES + 1):
            if k == 0 or abs(s1 - end.s_start) >= k * _CHANGE_ROOM:
                self.graph.add_edge((end.key, k), _TARGET, weight=0.0, kind="end")
        self._target_xy = end.start_xy
        starts = {n[1]: s0 for n in added if n != _TARGET}

        def weight(u: Any, v: Any, data: dict[str, Any]) -> float | None:
            if data["kind"] != "change":
                return float(data["weight"])
            # A lane change needs _CHANGE_ROOM metres left on the lane; hiding the edge (None) makes
            # A* go round rather than produce a sideways jump.
            lane = self.lanes[u[1] if u[0] == "S" else u[0]]
            k = u[2] if u[0] == "S" else u[1]
            begin = (starts[lane.key] if u[0] == "S" else lane.s_start) + k * _CHANGE_ROOM * lane.direction()
            if (lane.s_end - begin) * lane.direction() < _CHANGE_ROOM:
                return None
            return float(data["weight"])

        try:
            path = nx.astar_path(self.graph, source, _TARGET, heuristic=self._heuristic, weight=weight)
        except nx.NetworkXNoPath:
            raise NoRouteError(f"no path from road {start.key[0]} lane {start.key[2]} to road {end.key[0]} "
                               f"lane {end.key[2]}") from None
        finally:
            self.graph.remove_nodes_from(added)
        return [n[1] if n[0] == "S" else n[0] for n in path[:-1]]

    # ------------------------------------------------------------------ dense route
    def trace(self, start: Keypoint, end: Keypoint) -> list[RouteWaypoint]:
        """Dense waypoints (~``resolution`` m apart) from ``start`` to ``end`` along lanes."""
        return self._through([start, end])

    def _through(self, points: list[Keypoint]) -> list[RouteWaypoint]:
        """Dense route through ``points``; where a keypoint has several candidate lanes (junctions),
        the combination with the shortest total route wins (dynamic programming over keypoints)."""
        names = ["start"] + [f"keypoint {i}" for i in range(1, len(points) - 1)] + ["end"]
        cands = [self._locate(p, name) for p, name in zip(points, names, strict=True)]
        layers: list[dict[int, tuple[float, int, list[RouteWaypoint]]]] = [
            {j: (0.0, -1, []) for j in range(len(cands[0]))}]
        for i in range(1, len(points)):
            layer: dict[int, tuple[float, int, list[RouteWaypoint]]] = {}
            error: NoRouteError | None = None
            for j, (lane_b, s_b) in enumerate(cands[i]):
                for jp, (cost_p, _, _) in layers[-1].items():
                    lane_a, s_a = cands[i - 1][jp]
                    try:
                        seg = self._segment(lane_a, s_a, lane_b, s_b)
                    except NoRouteError as exc:
                        error = exc
                        continue
                    cost = cost_p + sum(math.hypot(b.x - a.x, b.y - a.y) for a, b in zip(seg, seg[1:], strict=False))
                    if j not in layer or cost < layer[j][0]:
                        layer[j] = (cost, jp, seg)
            if not layer:
                where = "" if len(points) == 2 else f" (between {names[i - 1]} and {names[i]})"
                raise NoRouteError(f"{error}{where}")
            layers.append(layer)
        j = min(layers[-1], key=lambda k: (layers[-1][k][0], k))
        segments = []
        for i in range(len(layers) - 1, 0, -1):
            _, jp, seg = layers[i][j]
            segments.append(seg)
            j = jp
        dense: list[RouteWaypoint] = []
        for seg in reversed(segments):
            for p in seg:
                self._append(dense, p)
        return dense

    def _segment(self, first: Lane, s0: float, last: Lane, s1: float) -> list[RouteWaypoint]:
        keys = self._search(first, s0, last, s1)
        out: list[RouteWaypoint] = []
        cursor = s0
        i = 0
        while i < len(keys):
            lane = self.lanes[keys[i]]
            stop = s1 if i == len(keys) - 1 else lane.s_end
            nxt = keys[i + 1] if i + 1 < len(keys) else None
            if nxt is not None and nxt[:2] == lane.key[:2]:  # same road section: a lane change
                target = self.lanes[nxt]
                limit = s1 if i + 1 == len(keys) - 1 else target.s_end
                option = self.graph.edges[(lane.key, 0), (nxt, 1)]["option"]
                cursor = self._emit_change(out, lane, target, cursor, limit, option)
                i += 1
                continue
            self._emit(out, lane, cursor, stop)
            if nxt is not None:
                cursor = self.lanes[nxt].s_start
            i += 1
        return out

    def _samples(self, a: float, b: float, step: float | None = None) -> list[float]:
        n = max(1, math.ceil(abs(b - a) / (step or self.resolution) - 1e-9))
        return [a + (b - a) * k / n for k in range(n + 1)]

    def _append(self, out: list[RouteWaypoint], point: RouteWaypoint) -> None:
        gap = math.hypot(point.x - out[-1].x, point.y - out[-1].y) if out else 0.0
        if out and gap < 0.05:
            return  # lane joins repeat the boundary point
        if gap > self.resolution * 1.2:
            # lanes that do not quite meet (seen on converted OSM maps): bridge the gap, keep ~1 m steps
            prev, n = out[-1], math.ceil(gap / self.resolution)
            for k in range(1, n):
                f = k / n
                out.append(dataclasses.replace(point, x=prev.x + f * (point.x - prev.x),
                                               y=prev.y + f * (point.y - prev.y)))
        out.append(point)

    def _emit(self, out: list[RouteWaypoint], lane: Lane, s_from: float, s_to: float) -> None:
        samples = self._samples(s_from, s_to)
        wps = [self.waypoint(lane.key, s) for s in samples]
        arc = sum(_dist(a, b) for a, b in zip(wps, wps[1:], strict=False))
        if len(wps) > 1 and max(_dist(a, b) for a, b in zip(wps, wps[1:], strict=False)) > self.resolution:
            # s runs along the reference line; an outer lane on a curve is longer than its s range.
            # Sample finely and keep points no more than `resolution` apart (chord).
            n = math.ceil(arc * 4.0 / self.resolution)
            fine = [self.waypoint(lane.key, s_from + (s_to - s_from) * k / n) for k in range(n + 1)]
            wps = [fine[0]]
            for prev, cur in zip(fine[1:-1], fine[2:], strict=False):
                if _dist(wps[-1], cur) > self.resolution:
                    wps.append(prev)
            wps.append(fine[-1])
        for wp in wps:
            self._append(out, _route_wp(wp, lane, lane.option))

    def _emit_change(self, out: list[RouteWaypoint], lane: Lane, target: Lane, cursor: float,
                     limit: float, option: RoadOption) -> float:
        """Follow ``lane`` briefly, blend onto ``target`` (same road and section); return s on target."""
        d = lane.direction()
        room = max((limit - cursor) * d, 0.0)
        lead = min(LANE_CHANGE_LEAD, room / 4.0)
        span = min(LANE_CHANGE_LENGTH, room - lead)
        begin = cursor + d * lead
        self._emit(out, lane, cursor, begin)
        ends = self._samples(begin, begin + d * span)
        for k, s in enumerate(ends[1:], start=1):
            f = k / (len(ends) - 1)
            f = f * f * (3.0 - 2.0 * f)  # smoothstep: tangent to both lanes at the ends
            a, b = self.waypoint(lane.key, s), self.waypoint(target.key, s)
            la, lb = a.transform.location, b.transform.location
            x, y = la.x + f * (lb.x - la.x), la.y + f * (lb.y - la.y)
            prev = out[-1] if out else None
            yaw = math.degrees(math.atan2(y - prev.y, x - prev.x)) if prev else a.transform.rotation.yaw
            on = target if f >= 0.5 else lane
            self._append(out, RouteWaypoint(x, y, 0.0, yaw, option, on.key[0], on.key[2], float(s),
                                            on.is_junction))
        return begin + d * span

    def plan(self, route: Route) -> Route:
        """A copy of ``route`` with ``dense`` traced through all its keypoints."""
        if len(route.keypoints) < 2:
            raise NoRouteError(f"route {route.id!r} needs at least 2 keypoints, has {len(route.keypoints)}")
        return dataclasses.replace(route, dense=self._through(list(route.keypoints)))


def _xy(wp: carla.Waypoint) -> tuple[float, float]:
    loc = wp.transform.location
    return float(loc.x), float(loc.y)


def _dist(a: carla.Waypoint, b: carla.Waypoint) -> float:
    return float(a.transform.location.distance(b.transform.location))


def _route_wp(wp: carla.Waypoint, lane: Lane, option: RoadOption) -> RouteWaypoint:
    loc, rot = wp.transform.location, wp.transform.rotation
    return RouteWaypoint(float(loc.x), float(loc.y), float(loc.z), float(rot.yaw), option, lane.key[0],
                         lane.key[2], float(wp.s), lane.is_junction)
