"""carla.Map loading and the isolation of carla calls that crash the process."""

from __future__ import annotations

from pathlib import Path

import pytest

from driving.carla_map import (
    CarlaCallCrashed,
    MapLoadError,
    isolated_lane_walk,
    load_carla_map,
    walk_to_lane_end,
    walk_to_lane_start,
)
from driving.routes import RoutePlanner
from driving.towns import TownSpec, get_town


@pytest.fixture(scope="module")
def dead_end_town(town_cache_dir):
    """A grid with fringe roads and no U-turns: lanes without predecessors / successors."""
    return get_town(TownSpec("deadend", "grid", {"number": 2, "length": 80.0, "attach_length": 40.0,
                                                  "dead_end_uturns": False}), town_cache_dir)


def _no_predecessor_lane(town) -> tuple[int, int]:
    planner = RoutePlanner(town.load_map())
    key = next(k for k in sorted(planner.lanes) if not planner.predecessors(k) and not planner.lanes[k].is_junction)
    return key[0], key[2]


def test_segfaulting_call_is_reported_not_fatal(dead_end_town) -> None:
    road, lane = _no_predecessor_lane(dead_end_town)
    with pytest.raises(CarlaCallCrashed, match=r"previous_until_lane_start.*SIGSEGV"):
        isolated_lane_walk(dead_end_town.xodr_file, road, lane, 5.0, "previous_until_lane_start")
    # the caller is alive and the native call works where it is safe
    points = isolated_lane_walk(dead_end_town.xodr_file, road, lane, 5.0, "next_until_lane_end")
    assert points and all((p.road_id, p.lane_id) == (road, lane) for p in points)


def test_pure_python_walks_are_safe_on_the_same_lane(dead_end_town) -> None:
    road, lane = _no_predecessor_lane(dead_end_town)
    cmap = dead_end_town.load_map()
    wp = cmap.get_waypoint_xodr(road, lane, 5.0)
    back = walk_to_lane_start(wp, 1.0)
    assert back[-1].s < 1.0 and len(back) >= 5
    ahead = walk_to_lane_end(wp, 1.0)
    native = isolated_lane_walk(dead_end_town.xodr_file, road, lane, 5.0, "next_until_lane_end")
    assert all(w.road_id == road for w in ahead)
    assert abs(ahead[-1].s - native[-1].s) <= 1.0 and ahead[-1].s > 20.0


def test_isolated_walk_reports_bad_arguments(dead_end_town) -> None:
    with pytest.raises(CarlaCallCrashed, match="no waypoint"):
        isolated_lane_walk(dead_end_town.xodr_file, 99999, -1, 1.0)


def test_map_load_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(MapLoadError, match="missing.xodr"):
        load_carla_map(tmp_path / "missing.xodr")
    bad = tmp_path / "bad.xodr"
    bad.write_text("<notopendrive/>")
    with pytest.raises(MapLoadError, match="bad.xodr"):
        load_carla_map(bad)
