"""Towns: SUMO build, OpenDRIVE conversion, id mapping against sumolib, cache behaviour."""

from __future__ import annotations

import math
from pathlib import Path

import carla
import pytest

from driving.towns import BUILTIN_TOWNS, TownSpec, TownSpecError, UnknownTownError, get_town
from driving.towns.build import road_lengths


def test_builtin_towns_are_distinct_and_cover_the_generators() -> None:
    assert len(BUILTIN_TOWNS) >= 4
    assert {s.generator for s in BUILTIN_TOWNS.values()} == {"grid", "spider", "rand", "roundabout"}
    junctions = {s.resolved()["junction"] for s in BUILTIN_TOWNS.values()}
    assert {"traffic_light", "priority", "priority_stop", "allway_stop"} <= junctions
    assert {s.resolved()["lanes"] for s in BUILTIN_TOWNS.values()} == {1, 2, 3}
    assert len({s.key() for s in BUILTIN_TOWNS.values()}) == len(BUILTIN_TOWNS)


def test_unknown_town_names_the_town_and_lists_known_ones(town_cache_dir: Path) -> None:
    with pytest.raises(UnknownTownError) as info:
        get_town("Town99", town_cache_dir)
    assert "Town99" in str(info.value)
    assert all(name in str(info.value) for name in BUILTIN_TOWNS)


def test_bad_spec_fields_are_named() -> None:
    with pytest.raises(TownSpecError, match="lanes"):
        TownSpec("x", "grid", {"lanes": 5})
    with pytest.raises(TownSpecError, match="grid.number|numbr"):
        TownSpec("x", "grid", {"numbr": 3})
    with pytest.raises(TownSpecError, match="generator"):
        TownSpec("x", "hexagon")


def test_second_get_town_is_a_cache_hit(tmp_path: Path) -> None:
    spec = TownSpec("tiny", "grid", {"number": 2, "length": 60.0})
    first = get_town(spec, tmp_path)
    assert first.built and first.xodr_file.exists() and first.net_file.exists()
    stamp = first.xodr_file.stat().st_mtime_ns
    second = get_town(spec, tmp_path)
    assert not second.built
    assert second.xodr_file == first.xodr_file and second.xodr_file.stat().st_mtime_ns == stamp
    # a changed parameter is a different cache entry
    other = get_town(TownSpec("tiny", "grid", {"number": 2, "length": 70.0}), tmp_path)
    assert other.built and other.directory != first.directory
    assert not list((tmp_path / "towns").glob(".build-*")), "temporary build directories left behind"


@pytest.mark.parametrize("town_fixture", ["grid_town", "rand_town", "spider_town", "roundabout_town"])
def test_lanes_match_sumo_shapes_and_lane_ids(town_fixture, request) -> None:
    """carla (x, -y) sits on sumolib's lane shape points; lane ids follow -(numLanes - index)."""
    grid_town = request.getfixturevalue(town_fixture)
    grid_map = grid_town.load_map()
    road_length = road_lengths(grid_town.xodr_text())
    errors = []
    for edge in grid_town.sumo_net.getEdges():
        road = grid_town.road_of_edge(edge.getID())
        assert road is not None and grid_town.edge_of_road(road) == edge.getID()
        for lane in edge.getLanes():
            road_id, lane_id = grid_town.xodr_lane(lane.getID())
            assert (road_id, lane_id) == (road, -(edge.getLaneNumber() - lane.getIndex()))
            assert grid_town.sumo_lane(road_id, lane_id) == lane.getID()
            shape = lane.getShape()
            # s runs along the road's reference line; on curves a lane is longer or shorter than it
            length = road_length[road_id]
            for frac in (0.1, 0.5, 0.9):
                wp = grid_map.get_waypoint_xodr(road_id, lane_id, frac * length)
                assert wp is not None
                loc = wp.transform.location
                errors.append(_distance_to_polyline(shape, loc.x, -loc.y))
    assert max(errors) < 0.05, f"{grid_town.name}: max transform error {max(errors):.3f} m"


def test_town_from_config_mapping_and_pickling(tmp_path: Path) -> None:
    import pickle

    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"name": "cfg_town", "generator": "grid", "params": {"number": 2, "length": 60.0}})
    town = get_town(cfg, tmp_path)
    assert town.spec == TownSpec("cfg_town", "grid", {"number": 2, "length": 60.0})
    assert town.sumo_net.getEdges()  # loads the lazily cached sumolib net
    clone = pickle.loads(pickle.dumps(town))
    assert clone.edge_of_road(town.road_of_edge("A0A1")) == "A0A1"
    assert len(clone.sumo_net.getEdges()) == len(town.sumo_net.getEdges())
    with pytest.raises(TownSpecError, match="generator"):
        get_town({"name": "x"}, tmp_path)


def test_failed_build_names_the_town_and_step(tmp_path: Path) -> None:
    from driving.towns import TownBuildError

    with pytest.raises(TownBuildError, match=r"town 'broken': netgenerate failed"):
        get_town(TownSpec("broken", "grid", {"number": 1}), tmp_path)
    assert not list((tmp_path / "towns").iterdir()), "a failed build left files in the cache"


def test_unwritable_cache_is_a_clear_error(tmp_path: Path) -> None:
    from driving.towns import TownBuildError

    blocker = tmp_path / "not_a_dir"
    blocker.write_text("")
    with pytest.raises(TownBuildError, match="cannot write the town cache"):
        get_town(TownSpec("nowhere", "grid", {"number": 2}), blocker)


def test_junction_connectors_have_no_edge(grid_town, grid_map) -> None:
    junction_roads = {w.road_id for w in grid_map.generate_waypoints(5.0) if w.is_junction}
    assert junction_roads
    for road in junction_roads:
        assert grid_town.edge_of_road(road) is None
        incoming, outgoing = grid_town.connector_roads(road)
        assert grid_town.edge_of_road(incoming) is not None and grid_town.edge_of_road(outgoing) is not None


def test_roundabout_town_has_a_roundabout_per_site(roundabout_town) -> None:
    text = roundabout_town.net_file.read_text()
    assert text.count("<roundabout ") == 9
    ring = roundabout_town.sumo_net.getEdge("ring1_1_0")
    # ring edges have priority: every link entering the ring from an arm yields ('m'), the ring goes on ('M')
    node = ring.getToNode()
    states = {(c.getFrom().getID().startswith("ring"), c.getState()) for c in node.getConnections()
              if c.getFromLane().allows("passenger") and c.getTo().getID().startswith("ring")}
    assert states == {(True, "M"), (False, "m")}


def test_sidewalks_and_crossings_exist(grid_town, grid_map) -> None:
    edge = grid_town.sumo_net.getEdges()[0]
    sidewalk = edge.getLanes()[0]
    assert sidewalk.allows("pedestrian") and not sidewalk.allows("passenger")
    road_id, lane_id = grid_town.xodr_lane(sidewalk.getID())
    wp = grid_map.get_waypoint_xodr(road_id, lane_id, 5.0)
    assert wp is not None and wp.lane_type == carla.LaneType.Sidewalk
    assert grid_town.xodr_text().count('type="crosswalk"') > 0


def test_every_builtin_town_builds_and_loads(town_cache_dir: Path) -> None:
    for name in BUILTIN_TOWNS:
        town = get_town(name, town_cache_dir)
        cmap = town.load_map()
        assert cmap.get_topology(), name
        assert town.load_map() is cmap  # cached per process


def _distance_to_polyline(shape, x: float, y: float) -> float:
    """Distance from (x, y) (SUMO frame) to a SUMO lane shape."""
    best = math.inf
    for a, b in zip(shape, shape[1:], strict=False):
        ax, ay, bx, by = a[0], a[1], b[0], b[1]
        dx, dy = bx - ax, by - ay
        f = max(0.0, min(1.0, ((x - ax) * dx + (y - ay) * dy) / ((dx * dx + dy * dy) or 1.0)))
        best = min(best, math.hypot(x - (ax + f * dx), y - (ay + f * dy)))
    return best


@pytest.mark.parametrize("town_fixture", ["grid_town", "rand_town", "spider_town", "roundabout_town"])
def test_junction_lanes_are_smooth(town_fixture, request) -> None:
    """SUMO junction lanes bend by < 20 degrees per shape point: a SUMO car's heading follows its lane,
    and its box is placed back from the front bumper along that heading, so a kink swings the box
    sideways (netconvert's default of 5 points per junction lane left 35-45 degree kinks)."""
    import sumolib

    town = request.getfixturevalue(town_fixture)
    net = sumolib.net.readNet(str(town.net_file), withInternal=True)
    worst, lanes = 0.0, 0
    for edge in net.getEdges(withInternal=True):
        if edge.getFunction() != "internal":
            continue
        for lane in edge.getLanes():
            shape = [p for p, q in zip(lane.getShape(), lane.getShape()[1:], strict=False) if math.dist(p, q) > 0.05]
            shape += lane.getShape()[-1:]
            heads = [math.degrees(math.atan2(b[1] - a[1], b[0] - a[0])) for a, b in zip(shape, shape[1:], strict=False)]
            worst = max([worst] + [abs((b - a + 180.0) % 360.0 - 180.0) for a, b in zip(heads, heads[1:], strict=False)])
            lanes += 1
    assert lanes > 20
    assert worst < 20.0, f"{town.name}: a junction lane kinks by {worst:.1f} degrees"
