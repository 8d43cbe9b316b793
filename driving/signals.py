"""Stop lines of traffic lights and stop signs, read from the town's OpenDRIVE landmarks.

Traffic lights: netconvert writes one landmark per SUMO link (types 1000011 / 1000001) with id
``<tlsID>_<linkIndex>``, valid on SUMO's incoming lane, at the stop line (the road's end). Stop signs:
the landmarks of type 206 injected by ``driving.towns`` on stop-controlled approaches. A ``StopLine``
is one (landmark, lane) pair; a stop sign covering two lanes gives two ``StopLine``s with one id.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from driving.towns import Town
from driving.towns.stops import STOP_SIGN_TYPE
from driving.types import RouteWaypoint

TRAFFIC_LIGHT_TYPES = ("1000011", "1000001")  # per-link signal heads; 1000001 = U-turn link


@dataclass(frozen=True)
class StopLine:
    id: str  # landmark id; traffic lights '<tlsID>_<linkIndex>'
    kind: str  # 'traffic_light' | 'stop'
    road_id: int
    lane_id: int
    s: float
    x: float  # centre of the stop line on its lane (world frame)
    y: float
    yaw: float  # lane direction, degrees
    half_width: float  # half lane width
    tls_id: str | None = None
    link_index: int | None = None
    to_road_id: int | None = None  # road entered through this link (after the junction), if known


_CACHE: dict[tuple[str, float], tuple[StopLine, ...]] = {}


def load_stop_lines(town: Town) -> list[StopLine]:
    """Every traffic-light and stop-sign stop line of ``town``, sorted by (kind, id, lane); cached."""
    key = (str(town.xodr_file), town.xodr_file.stat().st_mtime)
    if key not in _CACHE:
        _CACHE[key] = tuple(stop_lines_of_map(town.load_map(), _tls_link_targets(town)))
    return list(_CACHE[key])


def stop_lines_of_map(cmap: Any, link_targets: dict[tuple[str, int], int] | None = None) -> list[StopLine]:
    """Stop lines from any ``carla.Map`` (e.g. a real CARLA town). Without ``link_targets`` (SUMO's
    (tlsID, linkIndex) → road) ``to_road_id`` stays None; ids not shaped ``<tls>_<link>`` get no tls_id."""
    link_targets = link_targets or {}
    lines: list[StopLine] = []
    for mark in cmap.get_all_landmarks():
        if mark.type in TRAFFIC_LIGHT_TYPES:
            kind = "traffic_light"
        elif mark.type == STOP_SIGN_TYPE:
            kind = "stop"
        else:
            continue
        tls_id = link_index = to_road = None
        if kind == "traffic_light":
            head, _, index = mark.id.rpartition("_")
            if head and index.isdigit():
                tls_id, link_index = head, int(index)
                to_road = link_targets.get((tls_id, link_index))
        for low, high in mark.get_lane_validities():
            for lane_id in range(min(low, high), max(low, high) + 1):
                if lane_id == 0:
                    continue
                line = _stop_line(cmap, mark, kind, lane_id, tls_id, link_index, to_road)
                if line is not None:
                    lines.append(line)
    lines.sort(key=lambda ln: (ln.kind, ln.id, ln.lane_id))
    return lines


def _stop_line(cmap: Any, mark: Any, kind: str, lane_id: int, tls_id: str | None, link_index: int | None,
               to_road: int | None) -> StopLine | None:
    # carla clamps s to the lane; the landmark sits exactly at the road end, so look up just before it.
    wp = cmap.get_waypoint_xodr(mark.road_id, lane_id, max(mark.s - 1e-3, 0.0))
    if wp is None:
        return None
    loc, yaw = wp.transform.location, wp.transform.rotation.yaw
    return StopLine(
        id=mark.id, kind=kind, road_id=int(mark.road_id), lane_id=int(lane_id), s=float(mark.s),
        x=float(loc.x), y=float(loc.y), yaw=float(yaw), half_width=float(wp.lane_width) / 2.0,
        tls_id=tls_id, link_index=link_index, to_road_id=to_road,
    )


def _tls_link_targets(town: Town) -> dict[tuple[str, int], int]:
    """(tlsID, linkIndex) → road id of the edge the SUMO link leads to."""
    out: dict[tuple[str, int], int] = {}
    for edge in town.sumo_net.getEdges():
        for conns in edge.getOutgoing().values():
            for conn in conns:
                if conn.getTLSID():
                    road = town.road_of_edge(conn.getTo().getID())
                    if road is not None:
                        out[(conn.getTLSID(), int(conn.getTLLinkIndex()))] = road
    return out


def stop_lines_by_lane(lines: Iterable[StopLine]) -> dict[tuple[int, int], list[StopLine]]:
    """Index stop lines by their (road_id, lane_id)."""
    out: dict[tuple[int, int], list[StopLine]] = {}
    for line in lines:
        out.setdefault((line.road_id, line.lane_id), []).append(line)
    return out


@dataclass(frozen=True)
class RouteStopLine:
    """A stop line the route crosses: ``index`` is the first dense waypoint past the line."""

    index: int
    distance: float  # along the route from its start to the stop line, m
    line: StopLine


def route_stop_lines(dense: Sequence[RouteWaypoint], lines: Iterable[StopLine]) -> list[RouteStopLine]:
    """Stop lines crossed by a dense route, in route order.

    For a traffic light, only the link whose ``to_road_id`` is the road the route enters after the
    junction counts (a lane has one landmark per link). Stop signs count on their lane.
    """
    by_lane = stop_lines_by_lane(lines)
    cumulative = [0.0]
    for a, b in zip(dense, dense[1:], strict=False):
        cumulative.append(cumulative[-1] + math.hypot(b.x - a.x, b.y - a.y))
    found: list[RouteStopLine] = []
    for i in range(len(dense) - 1):
        here, nxt = dense[i], dense[i + 1]
        if (here.road_id, here.lane_id) == (nxt.road_id, nxt.lane_id) or here.is_junction:
            continue
        candidates = by_lane.get((here.road_id, here.lane_id))
        if not candidates:
            continue
        after = next((w.road_id for w in dense[i + 1:] if not w.is_junction), None)
        chosen: dict[str, StopLine] = {}
        for line in candidates:
            if line.kind == "stop" or line.to_road_id is None or line.to_road_id == after:
                chosen.setdefault(line.kind, line)
        for line in chosen.values():
            extra = max(line.s - here.s, 0.0) if here.lane_id < 0 else 0.0
            found.append(RouteStopLine(i + 1, cumulative[i] + extra, line))
    return found
