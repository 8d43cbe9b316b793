"""The ego's route as arrays: progress along it, the SUMO edges under it, its lights and stop lines.

Everything that depends only on the route is computed once at reset: cumulative arc length, the
SUMO edge sequence the ego vehicle is given, the speed limit at every dense point, junction entries,
and the traffic-light links and stop signs the route passes with the arc length of their stop lines.
At run time only the projection of the ego onto the polyline (a small window around the last
projection) is computed.

Stop lines are the ends of SUMO's incoming lanes: netconvert puts the OpenDRIVE signal landmark at
exactly that ``s`` (to 0.01 m), and the landmark id of a light is ``<tlsID>_<linkIndex>``.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from driving.types import Route
from driving.worlds.embedded.session import EmbeddedWorldError

_WINDOW_BACK = 5  # segments searched behind the last projection
_WINDOW_AHEAD = 60  # and ahead of it (60 m at 1 m spacing: far more than one step at any speed)
_RELOCATE_DISTANCE = 15.0  # m off the windowed projection before a global search
_SIGNAL_SEARCH_AHEAD = 10  # segments past an edge's last route waypoint where its lane end may project


@dataclass(frozen=True)
class RouteLight:
    s: float  # arc length of the stop line along the route, m
    landmark_id: str  # '<tlsID>_<linkIndex>'
    tls_id: str
    link_index: int
    in_lane: str  # SUMO incoming lane


@dataclass(frozen=True)
class RouteStop:
    s: float
    landmark_id: str  # 'stop_<edge>' as injected into the OpenDRIVE map
    in_lane: str


def sumo_to_carla(x: float, y: float) -> tuple[float, float]:
    return x, -y


class RouteTrack:
    """A dense route prepared for fast projection and look-ups (CARLA world frame)."""

    def __init__(self, route: Route, town: Any, sumo: Any) -> None:
        if len(route.dense) < 2:
            raise EmbeddedWorldError(
                f"route {route.id!r} has {len(route.dense)} dense waypoints; plan it first "
                "(driving.routes.RoutePlanner.plan)"
            )
        self.route = route
        dense = route.dense
        self.xy = np.array([(w.x, w.y) for w in dense], dtype=float)
        self.yaw = np.array([w.yaw for w in dense], dtype=float)
        seg = np.diff(self.xy, axis=0)
        self.seg_len = np.maximum(np.hypot(seg[:, 0], seg[:, 1]), 1e-9)
        self.seg_dir = seg / self.seg_len[:, None]
        self.s = np.concatenate([[0.0], np.cumsum(self.seg_len)])
        self.length = float(self.s[-1])
        self.options = [w.road_option.name for w in dense]
        self.is_junction = np.array([w.is_junction for w in dense], dtype=bool)
        entries = [i for i in range(len(dense)) if dense[i].is_junction and (i == 0 or not dense[i - 1].is_junction)]
        self.junction_entry_s = self.s[entries] if entries else np.zeros(0)
        self.lanes = [town.sumo_lane(w.road_id, w.lane_id) for w in dense]
        self.edges = self._edge_sequence(town, sumo)
        self.speed_limit = self._speed_limits(sumo)
        self.lights, self.stops = self._signals(town, sumo)
        self.index = 0  # segment of the last projection
        self._last_key: tuple[float, float, int] | None = None
        self._last_projection: tuple[int, float, float] = (0, 0.0, 0.0)
        # plain-float copies for the per-tick scalar look-ups
        self._s_list = self.s.tolist()
        self._seg_list = [(float(p[0]), float(p[1]), float(d[0]), float(d[1]), float(s0))
                          for p, d, s0 in zip(self.xy[:-1], self.seg_dir, self.s[:-1], strict=True)]
        self._entry_list = self.junction_entry_s.tolist()
        self._seg_len_list = self.seg_len.tolist()
        self._junction_list = [bool(j) for j in self.is_junction.tolist()]
        self._speed_limit_list = [float(v) for v in self.speed_limit.tolist()]

    # ------------------------------------------------------------------ reset-time preparation
    def _edge_sequence(self, town: Any, sumo: Any) -> list[str]:
        """SUMO edges along the route, with gaps filled by SUMO's router (always connected)."""
        raw: list[str] = []
        for lane in self.lanes:
            if lane is None:
                continue
            edge = lane.rpartition("_")[0]
            if not raw or raw[-1] != edge:
                raw.append(edge)
        if not raw:
            raise EmbeddedWorldError(f"route {self.route.id!r} lies on no SUMO edge of town {town.name!r}")
        net = town.sumo_net
        edges = [raw[0]]
        for edge in raw[1:]:
            successors = {e.getID() for e in net.getEdge(edges[-1]).getOutgoing()}
            if edge not in successors:
                bridge = sumo.simulation.findRoute(edges[-1], edge).edges
                if len(bridge) < 2:
                    raise EmbeddedWorldError(
                        f"route {self.route.id!r}: SUMO edge {edge!r} is unreachable from {edges[-1]!r}"
                    )
                edges.extend(bridge[1:-1])
            edges.append(edge)
        return edges

    def _speed_limits(self, sumo: Any) -> np.ndarray:
        limits = np.full(len(self.lanes), np.nan)
        cache: dict[str, float] = {}
        for i, lane in enumerate(self.lanes):
            if lane is not None:
                if lane not in cache:
                    cache[lane] = float(sumo.lane.getMaxSpeed(lane))
                limits[i] = cache[lane]
        # Junction points take the limit of the lane they came from (or the next one at the start).
        valid = np.flatnonzero(~np.isnan(limits))
        if valid.size == 0:
            return np.full(len(self.lanes), 13.89)
        fill = np.maximum.accumulate(np.where(~np.isnan(limits), np.arange(len(limits)), 0))
        out = limits[fill]
        out[: valid[0]] = limits[valid[0]]
        return out

    def _last_lane_on_edge(self) -> dict[int, tuple[str, int]]:
        """For each position k in ``edges``, the route's lane at the end of that edge and the index of
        its last dense waypoint there (edges the route covers only)."""
        out: dict[int, tuple[str, int]] = {}
        k = 0
        for i, lane in enumerate(self.lanes):
            if lane is None:
                continue
            edge = lane.rpartition("_")[0]
            while k < len(self.edges) and self.edges[k] != edge:
                k += 1
            if k < len(self.edges):
                out[k] = (lane, i)
        return out

    def _signals(self, town: Any, sumo: Any) -> tuple[list[RouteLight], list[RouteStop]]:
        links: dict[str, list[tuple[str, int, str]]] = {}
        for tls in sumo.trafficlight.getIDList():
            for index, group in enumerate(sumo.trafficlight.getControlledLinks(tls)):
                for in_lane, out_lane, _via in group:
                    links.setdefault(in_lane, []).append((tls, index, out_lane))
        stops = {a.edge_id: a for a in getattr(town, "stop_approaches", [])}
        lights: list[RouteLight] = []
        stop_list: list[RouteStop] = []
        lane_at_end = self._last_lane_on_edge()
        n_seg = len(self.seg_len)
        lo = 0  # signals come in route order: a route that passes a signal twice gets it twice
        for k in range(len(self.edges) - 1):
            edge, nxt = self.edges[k], self.edges[k + 1]
            lane, last_index = lane_at_end.get(k, (None, None))
            n_lanes = sumo.edge.getLaneNumber(edge)
            candidates = ([lane] if lane else []) + [f"{edge}_{i}" for i in range(n_lanes - 1, -1, -1)]
            link = None
            for cand in candidates:
                found = [lk for lk in links.get(cand, []) if lk[2].rpartition("_")[0] == nxt]
                if found:
                    link, lane = found[0], cand
                    break
            approach = stops.get(edge)
            if link is None and approach is None:
                continue
            lane = lane or candidates[0]
            # The lane's end lies at this pass of the edge: search from the previous signal up to
            # just past the edge's last waypoint, not the whole route (a loop would map it to the
            # first pass, and the scene would skip the second).
            hi = n_seg if last_index is None else min(n_seg, last_index + _SIGNAL_SEARCH_AHEAD)
            seg, s, _ = self._project_range(*sumo_to_carla(*sumo.lane.getShape(lane)[-1]), lo, max(hi, lo + 1))
            lo = seg
            if link is not None:
                tls, index, _ = link
                lights.append(RouteLight(s, f"{tls}_{index}", tls, index, lane))
            if approach is not None:
                xodr = town.xodr_lane(lane)
                if xodr is None or xodr[1] in approach.lane_ids:
                    stop_list.append(RouteStop(s, approach.id, lane))
        return lights, stop_list

    # ------------------------------------------------------------------ run time
    def _project_range(self, x: float, y: float, lo: int, hi: int) -> tuple[int, float, float]:
        """(segment, arc length, distance) of the nearest point on segments ``lo:hi``."""
        p0 = self.xy[lo:hi]
        d = self.seg_dir[lo:hi]
        rx, ry = x - p0[:, 0], y - p0[:, 1]
        # np.minimum/np.maximum: the same values as np.clip without its dispatch overhead
        t = np.minimum(np.maximum(rx * d[:, 0] + ry * d[:, 1], 0.0), self.seg_len[lo:hi])
        ex, ey = rx - t * d[:, 0], ry - t * d[:, 1]
        dist2 = ex * ex + ey * ey
        k = int(np.argmin(dist2))
        return lo + k, float(self.s[lo + k] + t[k]), math.sqrt(float(dist2[k]))

    def project(self, x: float, y: float) -> tuple[int, float, float]:
        """Project the ego centre; returns (segment index, arc length s, distance to the route)."""
        key = (x, y, self.index)
        if key == self._last_key:  # a standing ego: the same inputs give the same projection
            return self._last_projection
        n = len(self.seg_len)
        lo, hi = max(0, self.index - _WINDOW_BACK), min(n, self.index + _WINDOW_AHEAD)
        seg, s, dist = self._project_range(x, y, lo, hi)
        if dist > _RELOCATE_DISTANCE:
            g_seg, g_s, g_dist = self._project_range(x, y, 0, n)
            if g_dist < dist:
                seg, s, dist = g_seg, g_s, g_dist
        self.index = seg
        self._last_key, self._last_projection = key, (seg, s, dist)  # input state -> output
        return seg, s, dist

    def ahead_of_last(self, x: float, y: float, reach: float) -> tuple[float, float] | None:
        """(arc length ahead of the last projected point, distance from the route) of the point's
        projection onto the next ``reach`` metres of route, or None if it projects behind or beyond.
        Leaves the projection state alone."""
        seg, s_last, _ = self._last_projection
        hi = min(len(self.seg_len), bisect.bisect_right(self._s_list, s_last + reach) + 1)
        if hi <= seg:
            return None
        _, s, dist = self._project_range(x, y, seg, hi)
        ahead = s - s_last
        return (ahead, dist) if 0.0 < ahead < reach else None

    def point_at(self, s: float) -> tuple[float, float]:
        # bisect on plain-float lists: the same indices as np.searchsorted, at a fraction of the cost
        i = min(max(bisect.bisect_right(self._s_list, s) - 1, 0), len(self._seg_list) - 1)
        x0, y0, dx, dy, s0 = self._seg_list[i]
        t = s - s0
        return x0 + t * dx, y0 + t * dy

    def next_junction_entry(self, s: float) -> float | None:
        k = bisect.bisect_left(self._entry_list, s)
        return self._entry_list[k] if k < len(self._entry_list) else None
