"""Background traffic: SUMO vehicles and pedestrians kept at configured densities.

Every actor gets a random route drawn from the world's seeded RNG, so the same seed gives the same
traffic. Vehicles that arrive (or are removed as jammed) are replaced at once; pedestrians walk on
sidewalks and crossings between random sidewalk edges (SUMO's striping model) and are replaced when
they arrive. Positions are read through per-object subscriptions: one call per step returns all.
"""

from __future__ import annotations

import itertools
import logging
import math
import operator
from dataclasses import dataclass
from typing import Any

import numpy as np
import traci.constants as tc

log = logging.getLogger(__name__)

# (SUMO type id, length, width): CARLA-like passenger cars (compact, sedan, SUV, van).
VEHICLE_TYPES: tuple[tuple[str, float, float], ...] = (
    ("bg_compact", 4.2, 1.8),
    ("bg_sedan", 4.7, 1.85),
    ("bg_suv", 4.9, 2.1),
    ("bg_van", 5.3, 2.05),
)
PEDESTRIAN_TYPE = "bg_walker"
PEDESTRIAN_HALF_LENGTH = 0.25  # m, CARLA walkers' boxes are ~0.19-0.35 m half-extents
PEDESTRIAN_HALF_WIDTH = 0.3
_SUBSCRIBED = (tc.VAR_POSITION, tc.VAR_ANGLE, tc.VAR_SPEED)
_ROUTE_TRIES = 20
_POS, _ANGLE, _SPEED = tc.VAR_POSITION, tc.VAR_ANGLE, tc.VAR_SPEED
_get_pos, _get_angle, _get_speed = (operator.itemgetter(v) for v in (_POS, _ANGLE, _SPEED))
_INVALID = -1e9  # libsumo's INVALID_DOUBLE_VALUE is -1073741824
STANDING_SPEED = 0.1  # m/s: the ego counts as standing below this (the criteria's stop speed)
STANDOFF_CONTACT = 0.5  # m between a walker's edge and the ego's box that counts as against it
STANDOFF_AHEAD = 12.0  # m of route before the ego's front bumper ...
STANDOFF_LATERAL = 1.0  # ... and within this beyond its half-width: a walker standing in its path


def _junction_of(lane: str) -> str | None:
    """The junction of a SUMO internal lane (``:<junction>_<link>_<lane>``, crossings and walking areas
    alike), None for a normal lane."""
    return lane[1:].rsplit("_", 2)[0] if lane.startswith(":") else None


@dataclass
class TrafficConfig:
    n_vehicles: int = 80
    n_pedestrians: int = 40
    jam_timeout_s: float = 60.0  # a background vehicle stopped this long is removed (and replaced)
    jam_check_interval_s: float = 1.0
    standoff_timeout_s: float = 15.0  # an actor in a stand-off with the standing ego this long is removed


@dataclass
class ActorRow:
    """Size and identity of a SUMO-managed actor (positions come from subscriptions)."""

    actor_id: int
    half_length: float
    half_width: float
    is_vehicle: bool


class Traffic:
    """Spawns, refills and reads SUMO background actors. ``ids`` hands out episode-stable ints."""

    def __init__(self, sumo: Any, rng: np.random.Generator, ids: itertools.count, config: TrafficConfig) -> None:
        self.sumo = sumo
        self.rng = rng
        self.ids = ids
        self.config = config
        self.rows: dict[str, ActorRow] = {}  # SUMO id -> row, for every subscribed actor
        self.excluded: set[str] = set()  # SUMO vehicles not to touch (ego, placed vehicles)
        self._n_added = 0
        self._next_jam_check = 0.0
        self.removed_jammed = 0  # vehicles removed by the deadlock breaker this episode
        self.removed_standoffs = 0  # actors removed by the stand-off breaker this episode
        self._ego_moved_at = 0.0
        self._walkers_against: dict[str, float] = {}
        self.removed_now: set[str] = set()  # actors removed since the last SUMO step (still in its results)
        self._rebuild_meta(())
        self._define_types()
        self.vehicle_edges, self.pedestrian_edges = self._usable_edges()

    # ------------------------------------------------------------------ setup
    def _define_types(self) -> None:
        vt = self.sumo.vehicletype
        for name, length, width in VEHICLE_TYPES:
            vt.copy("DEFAULT_VEHTYPE", name)
            vt.setLength(name, length)
            vt.setWidth(name, width)
            vt.setMinGap(name, 2.0)
            vt.setImperfection(name, 0.3)
        vt.copy("DEFAULT_PEDTYPE", PEDESTRIAN_TYPE)
        vt.setLength(PEDESTRIAN_TYPE, 2 * PEDESTRIAN_HALF_LENGTH)
        vt.setWidth(PEDESTRIAN_TYPE, 2 * PEDESTRIAN_HALF_WIDTH)

    def _usable_edges(self) -> tuple[list[str], list[tuple[str, float]]]:
        """Normal edges passenger cars may use, and sidewalk edges with their length."""
        lane = self.sumo.lane
        cars: list[str] = []
        walks: list[tuple[str, float]] = []
        for edge in sorted(self.sumo.edge.getIDList()):
            if edge.startswith(":"):
                continue
            allowed = [lane.getAllowed(f"{edge}_{i}") for i in range(self.sumo.edge.getLaneNumber(edge))]
            if any(not a or "passenger" in a for a in allowed):
                cars.append(edge)
            if any("pedestrian" in a for a in allowed):
                walks.append((edge, lane.getLength(f"{edge}_0")))
        return cars, walks

    # ------------------------------------------------------------------ spawning
    def _pick(self, items: list[Any]) -> Any:
        return items[int(self.rng.integers(len(items)))]

    def add_vehicle(self) -> str | None:
        """Add one background vehicle on a random route; None if no route was found."""
        if len(self.vehicle_edges) < 2:
            return None
        for _ in range(_ROUTE_TRIES):
            origin, dest = self._pick(self.vehicle_edges), self._pick(self.vehicle_edges)
            if origin == dest:
                continue
            route = self.sumo.simulation.findRoute(origin, dest)
            if len(route.edges) >= 2:
                break
        else:
            return None
        actor_id = next(self.ids)
        vid = f"v{actor_id}"
        type_id, length, width = VEHICLE_TYPES[int(self.rng.integers(len(VEHICLE_TYPES)))]
        self.sumo.route.add(f"r{actor_id}", list(route.edges))
        self.sumo.vehicle.add(vid, f"r{actor_id}", typeID=type_id, departLane="best",
                              departPos="random_free", departSpeed="max")
        self.sumo.vehicle.setSpeedFactor(vid, float(self.rng.uniform(0.85, 1.1)))
        self.rows[vid] = ActorRow(actor_id, length / 2, width / 2, True)
        return vid

    def add_pedestrian(self) -> str | None:
        if len(self.pedestrian_edges) < 2:
            return None
        for _ in range(_ROUTE_TRIES):
            (origin, length), (dest, _) = self._pick(self.pedestrian_edges), self._pick(self.pedestrian_edges)
            if origin == dest:
                continue
            stages = self.sumo.simulation.findIntermodalRoute(origin, dest, modes="", vType=PEDESTRIAN_TYPE)
            if stages and all(s.edges for s in stages):
                break
        else:
            return None
        actor_id = next(self.ids)
        pid = f"p{actor_id}"
        self.sumo.person.add(pid, origin, float(self.rng.uniform(0.0, length)), depart=-3,
                             typeID=PEDESTRIAN_TYPE)
        for stage in stages:
            self.sumo.person.appendStage(pid, stage)
        self.rows[pid] = ActorRow(actor_id, PEDESTRIAN_HALF_LENGTH, PEDESTRIAN_HALF_WIDTH, False)
        return pid

    def after_step(self) -> None:
        """Subscribe the actors that entered the network this step.

        Only inserted actors are subscribed: a subscribed vehicle that SUMO discards before insertion
        (``--max-depart-delay``) or that is removed makes libsumo 1.28 fail the next step, and
        pending ones would report SUMO's invalid values.
        """
        sim, rows = self.sumo.simulation, self.rows
        self.removed_now = set()
        for vid in sim.getDepartedIDList():
            if vid in rows:
                self.sumo.vehicle.subscribe(vid, _SUBSCRIBED)
        for pid in sim.getDepartedPersonIDList():
            if pid in rows:
                self.sumo.person.subscribe(pid, _SUBSCRIBED)

    def refill(self) -> int:
        """Top both populations up to their targets; returns how many actors were added."""
        sim = self.sumo.simulation
        have = self.sumo.vehicle.getIDCount() + len(sim.getPendingVehicles()) - len(self.excluded)
        added = 0
        for _ in range(self.config.n_vehicles - have):
            added += self.add_vehicle() is not None
        for _ in range(self.config.n_pedestrians - self.sumo.person.getIDCount()):
            added += self.add_pedestrian() is not None
        if added or self._n_added == 0:
            self._forget_departed()
        self._n_added += added
        return added

    def _forget_departed(self) -> None:
        # Rows of actors that left are dropped lazily; the subscription results already omit them.
        if len(self.rows) > 4 * (self.config.n_vehicles + self.config.n_pedestrians) + 64:
            alive = set(self.sumo.vehicle.getIDList()) | set(self.sumo.person.getIDList())
            alive.update(self.sumo.simulation.getPendingVehicles())
            self.rows = {k: v for k, v in self.rows.items() if k in alive}

    def remove_jammed(self, now: float, ego: Any = None, ego_id: str = "", track: Any = None) -> int:
        """Remove background vehicles stopped longer than ``jam_timeout_s`` (deadlock breaker) and, given
        the ego's box (an ``ActorBox``), SUMO id and route (a ``RouteTrack`` projected at the ego), actors
        in a stand-off with it (``_remove_standoffs``)."""
        if ego is not None and abs(ego.speed) >= STANDING_SPEED:
            self._ego_moved_at = now
        if now < self._next_jam_check:
            return 0
        self._next_jam_check = now + self.config.jam_check_interval_s
        removed = 0
        vehicle = self.sumo.vehicle
        for vid in vehicle.getIDList():
            if vid in self.excluded:
                continue
            if vehicle.getWaitingTime(vid) > self.config.jam_timeout_s:
                # libsumo 1.28 fails the next step if a subscribed vehicle is removed: unsubscribe first.
                vehicle.unsubscribe(vid)
                vehicle.remove(vid)
                self.removed_now.add(vid)
                removed += 1
        if removed:
            self.removed_jammed += removed
            log.debug("removed %d jammed vehicles at t=%.1f", removed, now)
        if ego is not None and abs(ego.speed) < STANDING_SPEED:
            removed += self._remove_standoffs(ego, ego_id, now, track)
        else:
            self._walkers_against = {}
        return removed

    def _remove_standoffs(self, ego: Any, ego_id: str, now: float, track: Any) -> int:
        """Break stand-offs SUMO cannot see: the ego is moved into SUMO from outside, so SUMO's junction
        model does not coordinate with it. A car stopped inside the junction the ego stands in (each
        waiting for the other) and a walker standing against the ego's box or on its route just ahead
        (``track``; SUMO walkers walk into a car that stands on their crossing, or stop on the crossing
        or the corner in front of it, and stay there) are removed once both have stood still
        ``standoff_timeout_s`` -- the jam breaker would take ``jam_timeout_s``, and never takes walkers.
        Queues, red lights and walkers on the kerb are untouched."""
        limit = self.config.standoff_timeout_s
        vehicle, person = self.sumo.vehicle, self.sumo.person
        removed = 0
        junction = _junction_of(vehicle.getLaneID(ego_id)) if ego_id in vehicle.getIDList() else None
        if junction is not None and now - self._ego_moved_at > limit:
            for vid in vehicle.getIDList():
                if (vid not in self.excluded and _junction_of(vehicle.getLaneID(vid)) == junction
                        and vehicle.getWaitingTime(vid) > limit):
                    vehicle.unsubscribe(vid)
                    vehicle.remove(vid)
                    self.removed_now.add(vid)
                    removed += 1
        c, s = math.cos(math.radians(ego.yaw)), math.sin(math.radians(ego.yaw))
        against: dict[str, float] = {}  # walkers standing against the ego -> since when
        for pid in person.getIDList():
            px, py = person.getPosition(pid)
            dx, dy = px - ego.x, -py - ego.y  # SUMO y is flipped
            along, across = abs(c * dx + s * dy), abs(-s * dx + c * dy)
            gap = math.hypot(max(along - ego.half_length, 0.0), max(across - ego.half_width, 0.0))
            # on the route (round a turn too) just ahead of the front bumper
            on_route = None if track is None else track.ahead_of_last(px, -py, ego.half_length + STANDOFF_AHEAD)
            in_path = (on_route is not None and on_route[0] > ego.half_length
                       and on_route[1] < ego.half_width + STANDOFF_LATERAL)
            if ((gap < PEDESTRIAN_HALF_WIDTH + STANDOFF_CONTACT or in_path)
                    and person.getSpeed(pid) < STANDING_SPEED):
                against[pid] = self._walkers_against.get(pid, now)
                if now - against[pid] > limit:
                    person.unsubscribe(pid)
                    person.remove(pid)
                    self.removed_now.add(pid)
                    removed += 1
                    del against[pid]
        self._walkers_against = against
        if removed:
            self.removed_standoffs += removed
            log.debug("removed %d actors in a stand-off with the ego at t=%.1f", removed, now)
        return removed

    # ------------------------------------------------------------------ reading
    def read(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Current background actors: int ids, is_vehicle flags and an (N, 6) array of
        ``x, y, yaw_deg, speed, half_length, half_width`` in the CARLA world frame (box centres)."""
        vres = self.sumo.vehicle.getAllSubscriptionResults()
        pres = self.sumo.person.getAllSubscriptionResults()
        keys = (*vres, *pres)
        if keys != self._meta_keys:
            self._rebuild_meta(keys)
        if not keys:
            return self._meta_ids, self._meta_flags, np.zeros((0, 6))
        # One flat conversion: x, y (front bumper for vehicles), SUMO angle, speed (C-level getters).
        values = (*vres.values(), *pres.values())
        n = len(values)
        raw = np.empty((n, 4))
        raw[:, :2] = np.fromiter(itertools.chain.from_iterable(map(_get_pos, values)), float, 2 * n).reshape(n, 2)
        raw[:, 2] = np.fromiter(map(_get_angle, values), float, n)
        raw[:, 3] = np.fromiter(map(_get_speed, values), float, n)
        if raw.min() <= _INVALID:
            # SUMO answers INVALID_DOUBLE_VALUE (-2^30) for actors between stages (e.g. a person
            # about to leave): they are not on the network this step.
            valid = raw.min(axis=1) > _INVALID
            return self._convert(raw[valid], self._meta_back[valid], self._meta_half[valid],
                                 self._meta_ids[valid], self._meta_flags[valid])
        return self._convert(raw, self._meta_back, self._meta_half, self._meta_ids, self._meta_flags)

    @staticmethod
    def _convert(raw: np.ndarray, back: np.ndarray, half: np.ndarray, ids: np.ndarray,
                 flags: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        out = np.empty((raw.shape[0], 6))
        a = np.radians(raw[:, 2])
        # SUMO reports a vehicle's front bumper; its box centre is half a length behind it.
        out[:, 0] = raw[:, 0] - back * np.sin(a)
        out[:, 1] = back * np.cos(a) - raw[:, 1]
        out[:, 2] = raw[:, 2] - 90.0
        out[:, 3] = raw[:, 3]
        out[:, 4:6] = half
        return ids, flags, out

    def _rebuild_meta(self, keys: tuple[str, ...]) -> None:
        """Per-actor constants for the current set of subscribed actors (changes only on refill)."""
        meta = [self.rows[k] for k in keys]
        self._meta_keys = keys
        self._meta_ids = np.array([m.actor_id for m in meta], dtype=np.int64)
        self._meta_flags = np.array([m.is_vehicle for m in meta], dtype=bool)
        self._meta_half = np.array([(m.half_length, m.half_width) for m in meta], dtype=float).reshape(-1, 2)
        self._meta_back = np.where(self._meta_flags, self._meta_half[:, 0], 0.0)
        self._sumo_id_of = dict(zip(self._meta_ids.tolist(), keys, strict=True))

    def sumo_id(self, actor_id: int) -> str | None:
        """The SUMO id of a subscribed background actor (None for any other id, and for one removed
        since the last SUMO step)."""
        sid = self._sumo_id_of.get(actor_id)
        return None if sid in self.removed_now else sid
