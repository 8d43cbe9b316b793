"""Traffic-light and stop-sign stop lines against SUMO's own network."""

from __future__ import annotations

import math
import re

from driving.signals import load_stop_lines
from driving.towns.stops import STOP_STATES


def _vehicle_links(town):
    for edge in town.sumo_net.getEdges():
        for conns in edge.getOutgoing().values():
            for conn in conns:
                if conn.getFromLane().allows("passenger"):
                    yield conn


def test_traffic_light_ids_lanes_and_stop_line_match_sumo(grid_town) -> None:
    lines = {(ln.id, ln.lane_id): ln for ln in load_stop_lines(grid_town) if ln.kind == "traffic_light"}
    links = [c for c in _vehicle_links(grid_town) if c.getTLSID()]
    assert links and len(lines) == len(links)
    for conn in links:
        lane = conn.getFromLane()
        road_id, lane_id = grid_town.xodr_lane(lane.getID())
        line = lines[(f"{conn.getTLSID()}_{conn.getTLLinkIndex()}", lane_id)]
        assert (line.tls_id, line.link_index) == (conn.getTLSID(), conn.getTLLinkIndex())
        assert line.road_id == road_id
        assert line.to_road_id == grid_town.road_of_edge(conn.getTo().getID())
        assert abs(line.s - lane.getLength()) < 0.05
        end_x, end_y = lane.getShape()[-1][:2]
        assert math.hypot(line.x - end_x, line.y - (-end_y)) < 0.05
        assert abs(line.half_width - lane.getWidth() / 2) < 0.01


def test_no_stop_signs_in_a_traffic_light_town(grid_town) -> None:
    assert not grid_town.load_map().get_all_landmarks_of_type("206")
    assert not [ln for ln in load_stop_lines(grid_town) if ln.kind == "stop"]


def _check_stop_signs(town) -> int:
    cmap = town.load_map()
    stopped = {(c.getFromLane().getEdge().getID(), c.getFromLane().getIndex())
               for c in _vehicle_links(town) if c.getState() in STOP_STATES}
    assert stopped, "the town has no stop-controlled links"
    lines = {(ln.road_id, ln.lane_id): ln for ln in load_stop_lines(town) if ln.kind == "stop"}
    for edge_id, index in stopped:
        road_id, lane_id = town.xodr_lane(f"{edge_id}_{index}")
        line = lines[(road_id, lane_id)]
        assert line.id == f"stop_{edge_id}"
        lane = town.sumo_net.getEdge(edge_id).getLane(index)
        assert abs(line.s - lane.getLength()) < 0.05
        # found ahead from the start of the lane with carla's own query
        start = cmap.get_waypoint_xodr(road_id, lane_id, 0.5)
        ahead = start.get_landmarks_of_type(lane.getLength() + 1.0, "206", False)
        assert line.id in {m.id for m in ahead}
    assert len(lines) == len(stopped)
    # the empty <signals/> of each stopped road was replaced, not doubled
    text = town.xodr_text()
    for road in re.findall(r"<road\b.*?</road>", text, re.S):
        assert road.count("<signals") <= 1
    return len(stopped)


def test_stop_signs_on_priority_stop_approaches(stop_town) -> None:
    assert _check_stop_signs(stop_town) > 0


def test_stop_signs_on_allway_stop_approaches(allway_town) -> None:
    n = _check_stop_signs(allway_town)
    # an all-way stop stops every approach of every inner junction
    assert n >= 12


def _junction_entries(dense) -> list[int]:
    return [i for i in range(1, len(dense)) if dense[i].is_junction and not dense[i - 1].is_junction]


def test_route_crosses_one_light_per_junction_on_its_own_link(grid_town) -> None:
    from driving.routes import generate_route_set
    from driving.signals import route_stop_lines

    lines = load_stop_lines(grid_town)
    routes = [r for v in generate_route_set(grid_town, 2, 6, 150.0, 400.0).values() for r in v]
    for route in routes:
        dense = route.dense
        found = route_stop_lines(dense, lines)
        entries = _junction_entries(dense)
        assert [f.index for f in found] == entries  # every junction of grid_tls is signalised
        for f in found:
            before, after = dense[f.index - 1], next(w for w in dense[f.index:] if not w.is_junction)
            assert (f.line.road_id, f.line.lane_id) == (before.road_id, before.lane_id)
            assert f.line.to_road_id == after.road_id
            assert math.hypot(f.line.x - before.x, f.line.y - before.y) < 1.5
            walked = sum(math.hypot(b.x - a.x, b.y - a.y) for a, b in zip(dense[:f.index], dense[1:f.index],
                                                                          strict=False))
            assert abs(f.distance - walked) < 1.5


def test_route_stop_signs_on_minor_approaches(stop_town) -> None:
    from driving.routes import generate_route_set
    from driving.signals import route_stop_lines

    lines = load_stop_lines(stop_town)
    stopped_lanes = {(ln.road_id, ln.lane_id) for ln in lines}
    routes = [r for v in generate_route_set(stop_town, 1, 6, 150.0, 400.0).values() for r in v]
    total = 0
    for route in routes:
        found = route_stop_lines(route.dense, lines)
        expected = [i for i in _junction_entries(route.dense)
                    if (route.dense[i - 1].road_id, route.dense[i - 1].lane_id) in stopped_lanes]
        assert [f.index for f in found] == expected and all(f.line.kind == "stop" for f in found)
        total += len(found)
    assert total > 0


def test_stop_lines_of_a_plain_carla_map(stop_town) -> None:
    """Without the SUMO side (a real CARLA town), stop lines still come from the landmarks."""
    from driving.signals import stop_lines_of_map

    plain = stop_lines_of_map(stop_town.load_map())
    assert [(ln.id, ln.road_id, ln.lane_id, ln.s) for ln in plain] == [
        (ln.id, ln.road_id, ln.lane_id, ln.s) for ln in load_stop_lines(stop_town)]
