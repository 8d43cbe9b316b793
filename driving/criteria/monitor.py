"""RouteMonitor: all leaderboard criteria of one route, fed one ``WorldTick`` per world step.

The criteria run in the leaderboard's order (route completion, outside route lanes, collisions,
red lights, stop signs, minimum speed, route deviation, blocked) plus the route timeout. The route
ends like the leaderboard's scenario tree: at once on a route deviation, a blocked agent or a
timeout; one tick after route completion succeeds (the success is reported on the next tick).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from typing import Any

import carla
import numpy as np

from driving.criteria.collision import CollisionCriterion
from driving.criteria.events import PARAMS, InfractionEvent, check_version
from driving.criteria.lanes import OutsideRouteLanesCriterion
from driving.criteria.route import (
    BlockedCriterion,
    InRouteCriterion,
    MinimumSpeedCriterion,
    RouteCompletionCriterion,
    RouteGeometry,
    RouteTimeout,
)
from driving.criteria.traffic_rules import RedLightCriterion, StopSignCriterion
from driving.geometry import boxes_to_array
from driving.types import Route, WorldTick

log = logging.getLogger(__name__)

DEFAULT_SPEED_LIMIT = 50 / 3.6  # m/s, for roads whose OpenDRIVE has no <speed>
# SUMO answers -2^30 for the state of a vehicle that is not (or no longer) on the network; such an
# actor in the ground truth would poison the minimum-speed average and collisions.
MAX_SANE_SPEED = 1000.0


def road_speed_limits(carla_map: Any, town: Any = None) -> dict[int, float]:
    """Max speed (m/s) per OpenDRIVE road: from the town's SUMO edges when a ``Town`` is given,
    else from the OpenDRIVE ``<type><speed max unit>`` records (netconvert writes none)."""
    limits: dict[int, float] = {}
    if town is not None and hasattr(town, "sumo_net"):
        try:
            for edge in town.sumo_net.getEdges():
                road = town.road_of_edge(edge.getID())
                if road is not None and edge.getSpeed() > 0:
                    limits[int(road)] = float(edge.getSpeed())
        except (AttributeError, OSError, ValueError) as exc:
            log.warning("no speed limits from the SUMO net of %s: %s", getattr(town, "name", town), exc)
        if limits:
            return limits
    try:
        root = ET.fromstring(carla_map.to_opendrive())
    except (ET.ParseError, AttributeError, RuntimeError):
        return limits
    factor = {"m/s": 1.0, "km/h": 1 / 3.6, "mph": 0.44704}
    for road in root.iter("road"):
        speed = road.find("type/speed")
        if speed is None or not re.match(r"^-?\d+$", road.get("id", "")):
            continue
        try:
            value = float(speed.get("max", "nan")) * factor.get(speed.get("unit", "m/s"), 1.0)
        except ValueError:
            continue
        if value > 0:
            limits[int(road.get("id"))] = value
    return limits


class RouteMonitor:
    """Evaluates one route. ``town_or_map``: a ``driving.towns.Town`` (its map, stop lines and SUMO
    speed limits are loaded) or a ``carla.Map`` (then pass ``stop_lines``).

    ``timeout_s`` replaces the version's route timeout; ``blocked_time_s`` the 180 s blocked rule
    (tests); ``index`` / ``repetition`` name the record ('RouteScenario_<id>_rep<r>');
    ``speed_limit(x, y)`` (m/s) overrides the lane speed limits used by the 2.x timeout.
    """

    def __init__(
        self,
        route: Route,
        town_or_map: Any,
        version: str = "2.0",
        timeout_s: float | None = None,
        stop_lines: Sequence[Any] | None = None,
        index: int = 0,
        repetition: int = 0,
        speed_limit: Callable[[float, float], float] | None = None,
        blocked_time_s: float | None = None,
    ) -> None:
        self.version = check_version(version)
        self.route = route
        self.index = index
        self.repetition = repetition
        self.params = PARAMS[self.version]
        if blocked_time_s is not None:  # tests only: the leaderboard's rule is 180 s
            self.params = dataclasses.replace(self.params, blocked_time=float(blocked_time_s))
        town = town_or_map if hasattr(town_or_map, "load_map") else None
        if town is not None:
            self.map = town_or_map.load_map()
            if stop_lines is None:
                from driving.signals import load_stop_lines

                stop_lines = load_stop_lines(town_or_map)
        else:
            self.map = town_or_map
        stop_lines = list(stop_lines or [])
        self.geometry = RouteGeometry(route)
        p = self.params
        self._completion = RouteCompletionCriterion(self.geometry, p)
        self._lanes = OutsideRouteLanesCriterion(self.geometry, self.map, p)
        self._collision = CollisionCriterion(p)
        self._red = RedLightCriterion(stop_lines, route, self.map, p)
        self._stop = StopSignCriterion(stop_lines, self.map, p)
        self._min_speed = MinimumSpeedCriterion(self.geometry) if self.version != "1.0" else None
        self._in_route = InRouteCriterion(self.geometry, p)
        self._blocked = BlockedCriterion(p)
        self._ego_road: int | None = None
        self._wp_key: tuple[float, float] | None = None
        self._wp: Any = None
        self._actor_consts: tuple[Any, ...] = (None, None, None, None, None)
        if speed_limit is None:
            limits = road_speed_limits(self.map, town) if self.version != "1.0" and timeout_s is None else {}
            speed_limit = self._make_speed_limit(limits)
        self._timeout = RouteTimeout(self.geometry, self.version, speed_limit, timeout_s)
        self.events: list[InfractionEvent] = []
        self.done = False
        self._success_seen = False
        self._last_tick: WorldTick | None = None
        self._finished = False
        self._warned_invalid = False

    def _make_speed_limit(self, limits: dict[int, float]) -> Callable[[float, float], float]:
        # Like a CARLA vehicle's speed limit, the last known value holds on roads without one
        # (junction connectors).
        current = [DEFAULT_SPEED_LIMIT]

        def limit(x: float, y: float) -> float:
            if self._ego_road in limits:
                current[0] = limits[self._ego_road]
            return current[0]

        return limit

    # ------------------------------------------------------------------ per tick
    def update(self, tick: WorldTick) -> list[InfractionEvent]:
        """Run every criterion on ``tick``; returns the events it produced (also kept in ``events``)."""
        if self.done:
            return []
        self._last_tick = tick
        ego = tick.ego
        location = carla.Location(ego.x, ego.y, 0.0)
        # The nearest driving waypoint depends only on (x, y): a stopped ego reuses the last answer.
        if self._wp_key == (ego.x, ego.y):
            wp = self._wp
        else:
            wp = self.map.get_waypoint(location, project_to_road=True, lane_type=carla.LaneType.Driving)
            self._wp_key, self._wp = (ego.x, ego.y), wp
        if wp is not None:
            # compare distances in the plane the map lives in
            location.z = wp.transform.location.z
            self._ego_road = wp.road_id
        # one pass over the actors: collision candidates (bounding circles within reach) and the
        # background vehicles' mean speed
        arrays = getattr(tick, "actor_arrays", None)
        if arrays is not None:
            candidates, mean_speed = self._scan_arrays(tick, arrays)
        else:
            candidates, mean_speed = self._scan_boxes(tick, math.hypot(ego.half_length, ego.half_width))
        new: list[InfractionEvent] = []
        success_before = self._completion.success
        self._completion.update(tick)
        self._lanes.update(tick, location, wp)
        new += self._collision.update_candidates(tick, *candidates)
        new += self._red.update(tick)
        new += self._stop.update(tick)
        if self._min_speed is not None:
            new += self._min_speed.update(tick, mean_speed)
        new += self._in_route.update(tick)
        new += self._blocked.update(tick)
        new += self._timeout.update(tick)
        self.events += new
        if success_before or self._in_route.failed or self._blocked.failed or self._timeout.timed_out:
            self.done = True
        return new

    def _scan_boxes(self, tick: WorldTick, ego_reach: float) -> tuple[tuple[list[int], list[str], np.ndarray], float]:
        """Collision candidates ``(ids, kinds, boxes (M, 5))`` and the mean |speed| of the background
        vehicles (those within ``params.background_reach`` of the ego; nan if none), from ``tick.actors``."""
        ex, ey = tick.ego.x, tick.ego.y
        background2 = self.params.background_reach(tick.ego.speed) ** 2
        near = []
        speed_sum, vehicles = 0.0, 0
        for a in tick.actors:
            if not -MAX_SANE_SPEED < a.speed < MAX_SANE_SPEED:
                self._warn_invalid(a.id, a.speed, a.x, a.y)
                continue
            dx, dy = a.x - ex, a.y - ey
            if a.kind == "vehicle" and dx * dx + dy * dy <= background2:
                speed_sum += abs(a.speed)
                vehicles += 1
            reach = ego_reach + a.half_length + a.half_width  # >= the sum of the two radii
            if dx * dx + dy * dy < reach * reach:
                near.append(a)
        candidates = ([a.id for a in near], [a.kind for a in near], boxes_to_array(near))
        return candidates, (speed_sum / vehicles if vehicles else math.nan)

    def _scan_arrays(self, tick: WorldTick, arrays: Any) -> tuple[tuple[list[int], list[str], np.ndarray], float]:
        """``_scan_boxes`` on a world's actor arrays ``(ids, kind codes, kind names, data (N, 6):
        x, y, yaw, speed, half_length, half_width)``: the same mean speed (accumulated sequentially
        like the loop's sum), and as candidates the actors that pass ``obb_overlap``'s own circle
        prefilter (a subset of ``_scan_boxes``' candidates giving the same collisions)."""
        ids, codes, names, data = arrays
        if data.shape[0] == 0:
            return ([], [], np.zeros((0, 5))), math.nan
        abs_speed = np.abs(data[:, 3])
        valid: np.ndarray | None = abs_speed < MAX_SANE_SPEED  # False for nan, like the loop's test
        if valid.all():  # type: ignore[union-attr]
            valid = None  # the usual case: no masking needed
        else:
            k = int(np.argmin(valid))  # type: ignore[arg-type]
            self._warn_invalid(int(ids[k]), float(data[k, 3]), float(data[k, 0]), float(data[k, 1]))
        ego = tick.ego
        ego_radius = math.hypot(float(ego.half_length), float(ego.half_width))
        # Per-actor constants (kind mask, squared reach of the circle test): the world hands out the
        # same ids/kinds arrays while its actor set is unchanged, and an actor's size never changes.
        cached = self._actor_consts
        if not (cached[0] is ids and cached[1] is codes and cached[2] == ego_radius):
            code = names.index("vehicle") if "vehicle" in names else -1
            reach = ego_radius + np.hypot(data[:, 4], data[:, 5])
            cached = self._actor_consts = (ids, codes, ego_radius, codes == code, reach * reach)
        is_vehicle, reach2 = cached[3], cached[4]
        dx, dy = data[:, 0] - float(ego.x), data[:, 1] - float(ego.y)
        d2 = dx * dx + dy * dy
        background = is_vehicle & (d2 <= self.params.background_reach(float(ego.speed)) ** 2)
        vehicle_speeds = abs_speed[background if valid is None else valid & background]
        mean_speed = (float(np.cumsum(vehicle_speeds)[-1]) / len(vehicle_speeds) if len(vehicle_speeds)
                      else math.nan)
        # Candidates: exactly the bounding-circle prefilter of ``obb_overlap`` (same expression),
        # which would reject every other actor anyway.
        close = d2 < reach2
        near = (close if valid is None else valid & close).nonzero()[0]
        if near.size == 0:
            return ([], [], np.zeros((0, 5))), mean_speed
        candidates = (ids[near].tolist(), [names[k] for k in codes[near].tolist()], data[near][:, [0, 1, 2, 4, 5]])
        return candidates, mean_speed

    def _warn_invalid(self, actor_id: int, speed: float, x: float, y: float) -> None:
        if not self._warned_invalid:
            log.warning("ignoring actor %s with invalid ground truth (speed %s, at %s, %s); the world "
                        "reported a SUMO invalid value", actor_id, speed, x, y)
            self._warned_invalid = True

    # ------------------------------------------------------------------ state
    @property
    def min_speed_sample(self) -> tuple[int, float] | None:
        """2.x: (index of the MinimumSpeed checkpoint being measured, this tick's mean background speed
        in m/s, nan when no vehicle counted); None under 1.0 (no such criterion)."""
        c = self._min_speed
        return None if c is None else (len(c.checkpoint_values), c.background_speed)

    @property
    def min_speed_checkpoints(self) -> list[float]:
        """2.x: the MinimumSpeed values (%) of the checkpoints closed so far ([] under 1.0)."""
        return [] if self._min_speed is None else list(self._min_speed.checkpoint_values)

    @property
    def route_completion(self) -> float:
        """Percentage of the route completed so far (100 once the end is reached)."""
        return float(self._completion.value)

    @property
    def target_reached(self) -> bool:
        return self._completion.success

    @property
    def timeout_value(self) -> float:
        """The current route time budget, simulated seconds."""
        return self._timeout.value

    @property
    def outside_lanes_percentage(self) -> float:
        return self._lanes.percentage

    @property
    def status(self) -> str:
        """The status the leaderboard would write if the route ended now."""
        return self._record(0.0, closing=self._lanes.finish()).status

    @property
    def route_id(self) -> str:
        from driving.scoring import route_record_id

        return route_record_id(self.route.id, self.repetition, self.version)

    def _closing_events(self) -> list[InfractionEvent]:
        closing = self._lanes.finish()
        if self._min_speed is not None:
            closing += self._min_speed.finish(self._last_tick)
        return closing

    def _record(self, wall_time_s: float, failure_message: str = "",
                closing: Sequence[InfractionEvent] = ()) -> Any:
        from driving.scoring import build_route_record

        duration_game = self._last_tick.time if self._last_tick is not None else 0.0
        return build_route_record(
            route_id=self.route_id, index=self.index, events=[*self.events, *closing],
            route_completion=self._completion.value, target_reached=self._completion.success,
            route_length=self.geometry.length, duration_game=duration_game,
            duration_system=wall_time_s, version=self.version, failure_message=failure_message)

    def finalize(self, wall_time_s: float, failure_message: str = "") -> Any:
        """Close the running criteria (outside-lanes %, last min-speed checkpoint) and return the
        route's ``driving.scoring.RouteRecord``. ``failure_message``: an external failure such as
        'Agent crashed' (see ``driving.scoring.FAILURE_MESSAGES``)."""
        if not self._finished:
            self.events += self._closing_events()
            self._finished = True
        self.done = True
        return self._record(wall_time_s, failure_message)
