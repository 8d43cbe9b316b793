"""Reproducible route sets per town, split into train / validation / test.

Route ``i`` of a set depends only on (town, seed, i, length range): a random walk along the lane graph
(never through a turnaround: U-turns at dead ends are tighter than a car can drive)
from a random start, turned into keypoints (start, the middle of every road it drives along, end) and
re-planned with ``RoutePlanner`` so the keypoints alone reproduce it (as the leaderboard does). Splits
are a seeded permutation with exact proportions, so they are disjoint and stable under the seed.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from driving.routes.planner import Lane, NoRouteError, RoutePlanner
from driving.routes.route_xml import write_routes
from driving.scene import wrap_degrees
from driving.towns import Town
from driving.types import Keypoint, Route

log = logging.getLogger(__name__)

DEFAULT_SPLITS: dict[str, float] = {"train": 0.6, "val": 0.2, "test": 0.2}
WEATHERS: tuple[dict[str, float], ...] = (
    {"cloudiness": 5.0, "precipitation": 0.0, "precipitation_deposits": 0.0, "wind_intensity": 10.0,
     "sun_azimuth_angle": 45.0, "sun_altitude_angle": 70.0, "fog_density": 0.0, "wetness": 0.0},
    {"cloudiness": 60.0, "precipitation": 0.0, "precipitation_deposits": 0.0, "wind_intensity": 20.0,
     "sun_azimuth_angle": 120.0, "sun_altitude_angle": 40.0, "fog_density": 5.0, "wetness": 0.0},
    {"cloudiness": 90.0, "precipitation": 60.0, "precipitation_deposits": 40.0, "wind_intensity": 50.0,
     "sun_azimuth_angle": 200.0, "sun_altitude_angle": 15.0, "fog_density": 10.0, "wetness": 60.0},
)
_MAX_TRIES = 200
TURNAROUND_DEG = 150.0  # heading change across a junction beyond which the walk does not take it


class RouteSetError(ValueError):
    """Route-set parameters are invalid or the town cannot host such routes."""


_PLANNERS: dict[str, RoutePlanner] = {}


def planner_for(town: Town) -> RoutePlanner:
    """A ``RoutePlanner`` on the town's map, built once per process."""
    key = str(town.xodr_file)
    if key not in _PLANNERS:
        _PLANNERS[key] = RoutePlanner(town.load_map())
    return _PLANNERS[key]


def generate_route_set(town: Town, seed: int, count: int, min_length: float, max_length: float,
                       splits: Mapping[str, float] | None = None) -> dict[str, list[Route]]:
    """``count`` routes of ``min_length``–``max_length`` m in ``town``, split by ``splits`` fractions."""
    splits = dict(DEFAULT_SPLITS if splits is None else splits)
    if count < 1:
        raise RouteSetError(f"count must be >= 1, got {count}")
    if not 0 < min_length <= max_length:
        raise RouteSetError(f"need 0 < min_length <= max_length, got {min_length}, {max_length}")
    if not splits or any(f < 0 for f in splits.values()) or not math.isclose(sum(splits.values()), 1.0):
        raise RouteSetError(f"split fractions must be >= 0 and sum to 1, got {splits}")
    planner = planner_for(town)
    routes: list[Route] = []
    seen: set[tuple[Any, ...]] = set()
    for i in range(count):
        route = _one_route(planner, town, seed, i, min_length, max_length, seen)
        routes.append(route)
    order = list(range(count))
    random.Random(f"splits-{seed}").shuffle(order)
    sizes = _split_sizes(count, splits)
    out: dict[str, list[Route]] = {}
    start = 0
    for name, size in sizes.items():
        out[name] = [routes[j] for j in sorted(order[start:start + size])]
        start += size
    return out


def _split_sizes(count: int, splits: dict[str, float]) -> dict[str, int]:
    """Largest-remainder allocation: exact total, proportional, deterministic."""
    raw = {name: count * frac for name, frac in splits.items()}
    sizes = {name: math.floor(v) for name, v in raw.items()}
    rest = count - sum(sizes.values())
    for name in sorted(raw, key=lambda n: (-(raw[n] - sizes[n]), list(raw).index(n)))[:rest]:
        sizes[name] += 1
    return sizes


def _one_route(planner: RoutePlanner, town: Town, seed: int, index: int, min_length: float,
               max_length: float, seen: set[tuple[Any, ...]]) -> Route:
    rng = random.Random(f"{town.name}-{seed}-{index}")
    starts = sorted(k for k, lane in planner.lanes.items() if not lane.is_junction and lane.length >= 10.0)
    if not starts:
        raise RouteSetError(f"town {town.name!r} has no lanes long enough to start a route")
    for _ in range(_MAX_TRIES):
        target = rng.uniform(min_length, max_length)
        keypoints = _random_walk(planner, rng, rng.choice(starts), target)
        if keypoints is None:
            continue
        signature = tuple((round(k.x, 1), round(k.y, 1)) for k in (keypoints[0], keypoints[-1]))
        if signature in seen:
            continue
        route = Route(id=f"{town.name}_{seed}_{index}", town=town.name, keypoints=keypoints,
                      weather=dict(rng.choice(WEATHERS)))
        try:
            route = planner.plan(route)
        except NoRouteError:
            continue
        if min_length <= route.length <= max_length:
            seen.add(signature)
            return route
    raise RouteSetError(
        f"town {town.name!r}: could not make route {index} of {min_length:.0f}-{max_length:.0f} m "
        f"in {_MAX_TRIES} tries (is the town large enough?)"
    )


def _random_walk(planner: RoutePlanner, rng: random.Random, start: tuple[int, int, int],
                 target: float) -> list[Keypoint] | None:
    """Keypoints of a random lane-following walk of about ``target`` metres, or None (dead end)."""
    lane = planner.lanes[start]
    s0 = lane.s_start + (lane.s_end - lane.s_start) * rng.uniform(0.1, 0.4)
    points = [_point(planner, lane, s0)]
    driven = abs(lane.s_end - s0)
    while True:
        nxt = [k for k in sorted(planner.successors(lane.key)) if not _is_turnaround(planner, lane, k)]
        if not nxt:
            return None
        lane = planner.lanes[rng.choice(nxt)]
        if lane.is_junction:
            driven += lane.length
            continue
        remaining = target - driven
        if remaining <= lane.length * 0.9:
            if remaining < 2.0:
                remaining = min(2.0, lane.length / 2)
            points.append(_point(planner, lane, lane.s_start + lane.direction() * remaining))
            return points
        points.append(_point(planner, lane, (lane.s_start + lane.s_end) / 2.0))
        driven += lane.length


def _is_turnaround(planner: RoutePlanner, lane: Lane, connector: tuple[int, int, int]) -> bool:
    """Whether ``connector`` (after ``lane``) is a U-turn, e.g. SUMO's turnaround at a dead end: a loop
    of ~1.6 m radius no car can drive, and no leaderboard route takes. Routes never use them."""
    c = planner.lanes[connector]
    if lane.is_junction or not c.is_junction:
        return False
    return any(abs(wrap_degrees(planner.lanes[k].start_yaw - lane.end_yaw)) > TURNAROUND_DEG
               for k in planner.successors(connector))


def _point(planner: RoutePlanner, lane: Lane, s: float) -> Keypoint:
    wp = planner.waypoint(lane.key, s)
    loc, rot = wp.transform.location, wp.transform.rotation
    return Keypoint(x=round(float(loc.x), 3), y=round(float(loc.y), 3), z=0.0, yaw=round(float(rot.yaw), 3))


def write_route_set(route_set: Mapping[str, list[Route]], directory: str | Path, fmt: str = "2.x",
                    prefix: str = "") -> dict[str, Path]:
    """One route file per non-empty split: ``<directory>/<prefix><split>.xml`` (an empty split has no file:
    a route file without routes is not a valid leaderboard file)."""
    directory = Path(directory)
    return {name: write_routes(routes, directory / f"{prefix}{name}.xml", fmt)
            for name, routes in route_set.items() if routes}
