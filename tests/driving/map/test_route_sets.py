"""Route sets: reproducible under the seed, disjoint splits, lengths in range, XML round trip."""

from __future__ import annotations

import pytest

from driving.routes import RoutePlanner, RouteSetError, generate_route_set, read_routes, write_route_set


def _signature(route) -> tuple:
    return route.id, tuple(route.keypoints)


def test_same_seed_same_routes_and_splits(grid_town) -> None:
    a = generate_route_set(grid_town, seed=3, count=12, min_length=100.0, max_length=400.0)
    b = generate_route_set(grid_town, seed=3, count=12, min_length=100.0, max_length=400.0)
    assert {k: [_signature(r) for r in v] for k, v in a.items()} == {k: [_signature(r) for r in v] for k, v in b.items()}
    c = generate_route_set(grid_town, seed=4, count=12, min_length=100.0, max_length=400.0)
    assert {_signature(r) for v in a.values() for r in v} != {_signature(r) for v in c.values() for r in v}


def test_splits_are_disjoint_proportional_and_lengths_in_range(rand_town) -> None:
    sets = generate_route_set(rand_town, seed=0, count=10, min_length=100.0, max_length=500.0)
    assert {k: len(v) for k, v in sets.items()} == {"train": 6, "val": 2, "test": 2}
    ids = [r.id for v in sets.values() for r in v]
    assert len(ids) == len(set(ids)) == 10
    starts = [(r.keypoints[0], r.keypoints[-1]) for v in sets.values() for r in v]
    assert len(set(starts)) == 10, "the same route appears twice"
    for route in (r for v in sets.values() for r in v):
        assert 100.0 <= route.length <= 500.0 and route.town == "rand_mixed" and route.dense


def test_route_i_does_not_depend_on_count(spider_town) -> None:
    small = generate_route_set(spider_town, seed=1, count=4, min_length=100.0, max_length=300.0)
    large = generate_route_set(spider_town, seed=1, count=8, min_length=100.0, max_length=300.0)
    by_id = {r.id: r.keypoints for v in large.values() for r in v}
    for route in (r for v in small.values() for r in v):
        assert by_id[route.id] == route.keypoints


@pytest.mark.parametrize("fmt", ["1.0", "2.x"])
def test_written_route_files_replan_to_the_same_routes(grid_town, tmp_path, fmt: str) -> None:
    sets = generate_route_set(grid_town, seed=5, count=5, min_length=150.0, max_length=300.0,
                              splits={"train": 0.6, "test": 0.4})
    files = write_route_set(sets, tmp_path, fmt=fmt, prefix="grid_tls_")
    assert sorted(p.name for p in files.values()) == ["grid_tls_test.xml", "grid_tls_train.xml"]
    planner = RoutePlanner(grid_town.load_map())
    for split, path in files.items():
        back = read_routes(path)
        assert [r.id for r in back] == [r.id for r in sets[split]]
        for orig, got in zip(sets[split], back, strict=True):
            assert got.keypoints == orig.keypoints and got.weather == orig.weather
            assert abs(planner.plan(got).length - orig.length) < 1e-6


def test_empty_splits_write_no_file(grid_town, tmp_path) -> None:
    sets = generate_route_set(grid_town, seed=0, count=2, min_length=100.0, max_length=200.0)
    assert {k: len(v) for k, v in sets.items()} == {"train": 1, "val": 1, "test": 0}
    files = write_route_set(sets, tmp_path)
    assert sorted(files) == ["train", "val"] and sorted(p.name for p in tmp_path.iterdir()) == ["train.xml", "val.xml"]


def test_bad_parameters(grid_town) -> None:
    with pytest.raises(RouteSetError, match="sum to 1"):
        generate_route_set(grid_town, 0, 5, 100.0, 200.0, splits={"train": 0.5})
    with pytest.raises(RouteSetError, match="min_length"):
        generate_route_set(grid_town, 0, 5, 300.0, 200.0)


def test_same_routes_in_another_process(grid_town, town_cache_dir) -> None:
    """Reproducible across processes (different hash seeds), not only within one."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import json, sys\n"
        "from driving.routes import generate_route_set\n"
        "from driving.towns import get_town\n"
        "sets = generate_route_set(get_town('grid_tls', sys.argv[1]), 9, 6, 100.0, 400.0)\n"
        "print(json.dumps({k: [[r.id, [[p.x, p.y] for p in r.keypoints]] for r in v] for k, v in sets.items()}))\n"
    )
    here = generate_route_set(grid_town, 9, 6, 100.0, 400.0)
    expected = {k: [[r.id, [[p.x, p.y] for p in r.keypoints]] for r in v] for k, v in here.items()}
    for hash_seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code, str(town_cache_dir)], capture_output=True, text=True,
                             cwd=Path(__file__).parents[3], env={**os.environ, "PYTHONHASHSEED": hash_seed},
                             timeout=120, check=True).stdout
        assert json.loads(out.strip().splitlines()[-1]) == expected


def test_routes_never_take_a_dead_end_turnaround(roundabout_town) -> None:
    """The roundabout town's arms end in dead ends whose SUMO turnarounds are ~1.6 m radius loops;
    the lane graph has them, generated routes never drive them."""
    from driving.routes.route_sets import planner_for
    from driving.scene import wrap_degrees

    planner = planner_for(roundabout_town)

    def reverses(before, after) -> bool:
        return abs(wrap_degrees(after.start_yaw - before.end_yaw)) > 150.0

    turnarounds = {c for k, lane in planner.lanes.items() if not lane.is_junction
                   for c in planner.successors(k) if planner.lanes[c].is_junction
                   and any(reverses(lane, planner.lanes[o]) for o in planner.successors(c))}
    assert turnarounds, "the town has turnarounds, so the check below can fail"
    sets = generate_route_set(roundabout_town, seed=0, count=20, min_length=200.0, max_length=600.0)
    for route in (r for v in sets.values() for r in v):
        dense = route.dense
        for i in range(1, len(dense)):
            if dense[i].is_junction and not dense[i - 1].is_junction:
                j = next((j for j in range(i, len(dense)) if not dense[j].is_junction), None)
                if j is not None:
                    assert abs(wrap_degrees(dense[j].yaw - dense[i - 1].yaw)) < 150.0, (route.id, i)
