"""``EmbeddedWorld``: SUMO traffic, lights and pedestrians + our kinematic ego, without a CARLA server.

One step (20 Hz): integrate the ego's bicycle model under the control, advance scripted actors, move
the ego into SUMO (``moveToXY`` with its front bumper and SUMO angle, so traffic reacts to it), step
SUMO, keep the populations topped up, read every actor into one table, and build the Scene from it.
``tick()`` turns the same table into ground truth for the criteria.

Frames: SUMO net coordinates map to CARLA's world frame as ``(x, -y)``; ``yaw = sumo_angle - 90``.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from driving.scene import EgoState, Scene, wrap_degrees
from driving.types import ActorBox, Route, VehicleControl, World, WorldTick
from driving.worlds.embedded import session
from driving.worlds.embedded.ego import EgoParams, EgoVehicle
from driving.worlds.embedded.perception import (
    KIND_NAMES,
    KIND_PEDESTRIAN,
    KIND_VEHICLE,
    ActorTable,
    PerceptionConfig,
    SceneBuilder,
)
from driving.worlds.embedded.route_track import RouteTrack
from driving.worlds.embedded.scripted import Jaywalker, PlacedVehicle, ScriptedActors, StaticProp
from driving.worlds.embedded.session import EmbeddedWorldError, SumoOptions
from driving.worlds.embedded.traffic import Traffic, TrafficConfig
from driving.worlds.embedded.yielding import EgoYielding

log = logging.getLogger(__name__)

EGO_SUMO_ID = "ego"
EGO_ACTOR_ID = 0
_OFF_ROUTE = 3.0  # m from the route: the ego is moved into SUMO anywhere (keepRoute=2), not on its route
_BACK_ON_ROUTE = 1.5  # m: hysteresis for going back to keepRoute=1
_TLS_STATIC = 0  # libsumo TraCILogic.type of a fixed-time program
_BOX_FIELDS = ("id", "kind", "x", "y", "yaw", "speed", "half_length", "half_width")


@dataclass
class EmbeddedWorldConfig:
    """Configuration of the embedded world (Hydra-instantiable)."""

    town: str = "grid_tls"
    n_vehicles: int = 80
    n_pedestrians: int = 40
    jaywalkers: int = 0  # scripted pedestrians crossing the route ahead, triggered by the ego's approach
    perception_radius: float = 50.0
    seed: int = 0
    sumo_step_length: float = 0.05
    sumo_action_step: float = 0.1  # s between SUMO drivers' decisions (reaction time of background traffic)
    route_horizon: float = 100.0
    jam_timeout_s: float = 60.0
    standoff_timeout_s: float = 15.0  # s: a car or walker in a stand-off with the standing ego is removed
    yield_to_ego: bool = True  # SUMO walkers (always) and cars (ego below 1 m/s) stop short of it, as CARLA's do
    cache_dir: str | None = None
    ego: EgoParams = field(default_factory=EgoParams)

    def validate(self) -> None:
        for name in ("n_vehicles", "n_pedestrians", "jaywalkers"):
            if int(getattr(self, name)) < 0:
                raise EmbeddedWorldError(f"EmbeddedWorldConfig.{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("perception_radius", "sumo_step_length", "sumo_action_step", "route_horizon", "jam_timeout_s",
                     "standoff_timeout_s"):
            if not float(getattr(self, name)) > 0:
                raise EmbeddedWorldError(f"EmbeddedWorldConfig.{name} must be > 0, got {getattr(self, name)!r}")


class _BoxCache:
    """The last ground-truth boxes built, reused for actors whose row did not change."""

    def __init__(self) -> None:
        self.ids = np.zeros(0, np.int64)
        self.data = np.zeros((0, 6))
        self.boxes: list[ActorBox] = []

    def boxes_of(self, ids: np.ndarray, kinds: np.ndarray, data: np.ndarray) -> list[ActorBox]:
        # Boxes are immutable, so an actor whose row did not change (parked, waiting, static) keeps
        # the previous box; only changed rows make new boxes, filling the frozen dataclass' __dict__
        # directly (its __init__ costs 2.5x as much).
        if self.ids.shape == ids.shape and np.array_equal(self.ids, ids):
            actors = list(self.boxes)
            changed = np.flatnonzero((data != self.data).any(axis=1))
        else:
            actors = [None] * len(ids)
            changed = np.arange(len(ids))
        new, fields, names = object.__new__, _BOX_FIELDS, KIND_NAMES
        for i, aid, k, row in zip(changed.tolist(), ids[changed].tolist(), kinds[changed].tolist(),
                                  data[changed].tolist(), strict=True):
            box = new(ActorBox)
            box.__dict__.update(zip(fields, (aid, names[k], *row), strict=True))
            actors[i] = box
        self.ids, self.data, self.boxes = ids, data, actors
        return list(actors)


class EmbeddedTick(WorldTick):
    """The embedded world's ``WorldTick``: ``actors`` is built on first access from the actor arrays.

    ``actor_arrays = (ids int64 (N,), kind codes int8 (N,), kind names by code, data (N, 6))`` with
    data rows ``x, y, yaw_deg, speed, half_length, half_width`` in the order of ``actors``; it is
    None once ``actors`` was built or set (a caller may have changed that list), so readers of the
    arrays (the criteria) see exactly what ``actors`` would hold. The ``ActorBox`` list is made only
    for readers that want it (rendering, recording, tests). Pickles and copies as a plain ``WorldTick``.
    """

    _arrays: tuple[np.ndarray, np.ndarray, tuple[str, ...], np.ndarray] | None = None
    _box_cache: _BoxCache | None = None

    @property
    def actor_arrays(self) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], np.ndarray] | None:
        return self._arrays if self.__dict__.get("_actors") is None else None

    @property  # type: ignore[override]
    def actors(self) -> list[ActorBox]:
        boxes = self.__dict__.get("_actors")
        if boxes is None:
            ids, kinds, _names, data = self._arrays  # type: ignore[misc]
            cache = self._box_cache if self._box_cache is not None else _BoxCache()
            boxes = self.__dict__["_actors"] = cache.boxes_of(ids, kinds, data)
        return boxes

    @actors.setter
    def actors(self, value: list[ActorBox] | None) -> None:
        self.__dict__["_actors"] = value

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return WorldTick, tuple(getattr(self, f.name) for f in dataclasses.fields(WorldTick))


class EmbeddedWorld(World):
    """The embedded world. Only one per process (libsumo): creating another closes this one."""

    def __init__(self, config: EmbeddedWorldConfig | None = None) -> None:
        from driving.towns import get_town

        self.config = config or EmbeddedWorldConfig()
        self.config.validate()
        self.dt = float(self.config.sumo_step_length)
        self.town = get_town(self.config.town, self.config.cache_dir)
        self._map: Any = None
        self._closed = False
        self._sumo: Any = None
        self._episode = False
        self.timings: dict[str, float] = defaultdict(float)  # cumulative seconds per step phase
        self.clock = time.perf_counter  # benchmarks on a shared machine may use time.thread_time
        self.steps = 0
        session.claim(self, self.close)

    # ------------------------------------------------------------------ World API
    @property
    def carla_map(self) -> Any:
        if self._map is None:
            self._map = self.town.load_map()
        return self._map

    def reset(self, route: Route, seed: int | None = None) -> Scene:
        self._check_open()
        if route.town and route.town != self.town.name:
            raise EmbeddedWorldError(
                f"route {route.id!r} is in town {route.town!r} but this world runs town {self.town.name!r}")
        session.claim(self, self.close)
        self._episode = False  # until this reset completes: a failed reset leaves no half episode
        seed = self.config.seed if seed is None else int(seed)
        sumo = session.start(SumoOptions(self.town.net_file, seed, self.dt, self.config.sumo_action_step))
        self._sumo = sumo
        self._rng = np.random.default_rng(seed)
        self._ids = itertools.count(1)
        self.frame, self.time = 0, 0.0
        self.timings.clear()
        self.steps = 0
        self._control = VehicleControl()
        self.track = RouteTrack(route, self.town, sumo)
        first = route.dense[0]
        self.ego = EgoVehicle(self.config.ego)
        self.ego.reset(first.x, first.y, first.yaw)
        self.scripted = ScriptedActors()
        self._ego_on_route = True
        self._ego_routes = 0
        self._insert_ego()
        sumo.simulationStep()  # the ego is on the network before any traffic is inserted
        self.traffic = Traffic(sumo, self._rng, self._ids, TrafficConfig(
            self.config.n_vehicles, self.config.n_pedestrians, self.config.jam_timeout_s,
            standoff_timeout_s=self.config.standoff_timeout_s))
        self.traffic.excluded.add(EGO_SUMO_ID)
        self.yielding = EgoYielding(sumo, self.traffic.sumo_id, self.dt) if self.config.yield_to_ego else None
        self.traffic.refill()
        self._sync_ego()
        sumo.simulationStep()
        self.traffic.after_step()
        self._init_lights()
        self.scene_builder = SceneBuilder(
            PerceptionConfig(radius=self.config.perception_radius, route_horizon=self.config.route_horizon),
            self.track, self.config.ego.half_length)
        self._episode = True
        self._table: ActorTable | None = None
        self._box_cache = _BoxCache()
        self._kinds_of: tuple[np.ndarray | None, np.ndarray] = (None, np.zeros(0, np.int8))
        self._extra_of: tuple[Any, ...] = (None, None, None, None, None)
        self._spawn_route_jaywalkers(int(self.config.jaywalkers))
        self._scene = self._build_scene()
        return self._scene

    def step(self, control: VehicleControl) -> Scene:
        self._check_episode()
        sumo, timings = self._sumo, self.timings
        clock = self.clock
        t0 = clock()
        self._control = control.clipped()
        self.ego.step(self._control, self.dt)
        self.scripted.step(self.time + self.dt, self.dt, self.ego.x, self.ego.y)
        t1 = clock()
        for placed in self.scripted.placed:
            placed.advance(self.dt)
            placed.sync(sumo)
        self._sync_ego()
        t2 = clock()
        sumo.simulationStep()
        t3 = clock()
        self.frame += 1
        self.time = self.frame * self.dt
        self._ensure_ego()
        self.traffic.after_step()
        e, p = self.ego, self.config.ego
        ego_box = ActorBox(EGO_ACTOR_ID, "ego", e.x, e.y, e.yaw_deg, p.half_length, p.half_width, e.speed)
        self.traffic.remove_jammed(self.time, ego_box, EGO_SUMO_ID, self.track)
        self.traffic.refill()
        t4 = clock()
        self._update_lights()
        self._table = None
        self._scene = self._build_scene()
        if self.yielding is not None:  # on this step's actors; takes effect at SUMO's next step
            table = self._actor_table()
            self.yielding.update(ego_box, table.ids, table.kinds == KIND_VEHICLE, table.data)
        t5 = clock()
        timings["ego_dynamics"] += t1 - t0
        timings["sumo_sync"] += t2 - t1
        timings["sumo_step"] += t3 - t2
        timings["refill"] += t4 - t3
        timings["perception"] += t5 - t4
        self.steps += 1
        return self._scene

    def tick(self) -> WorldTick:
        self._check_episode()
        t0 = self.clock()
        table = self._actor_table()
        e = self.ego
        p = self.config.ego
        ego_box = ActorBox(EGO_ACTOR_ID, "ego", e.x, e.y, e.yaw_deg, p.half_length, p.half_width, e.speed)
        result = EmbeddedTick(self.frame, self.time, ego_box, self._control, None, dict(self._light_states),
                              e.acceleration)
        result._arrays = (table.ids, table.kinds, KIND_NAMES, table.data)
        result._box_cache = self._box_cache
        self.timings["ground_truth"] += self.clock() - t0
        return result

    @property
    def scene(self) -> Scene:
        """The Scene of the last reset/step."""
        self._check_episode()
        return self._scene

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._episode = False
        session.release(self)
        session.stop()
        self._sumo = None

    # ------------------------------------------------------------------ scripted actors
    def spawn_static(self, x: float, y: float, yaw: float, half_length: float, half_width: float) -> int:
        """A static prop (only in our geometry: layout collisions). Returns its actor id."""
        self._check_episode()
        prop = StaticProp(next(self._ids), float(x), float(y), float(yaw), float(half_length), float(half_width))
        self.scripted.statics.append(prop)
        self._table = None
        return prop.actor_id

    def spawn_jaywalker(self, x: float, y: float, yaw: float, speed: float, start_time: float, *,
                        trigger_distance: float | None = None, walk_distance: float = 20.0) -> int:
        """A scripted pedestrian walking straight along ``yaw`` at ``speed`` from ``start_time`` (s after
        reset) or when the ego comes within ``trigger_distance``, for ``walk_distance`` metres."""
        self._check_episode()
        walker = Jaywalker(next(self._ids), float(x), float(y), float(yaw), float(speed), float(start_time),
                           trigger_distance, float(walk_distance))
        self.scripted.jaywalkers.append(walker)
        self._table = None
        return walker.actor_id

    def place_vehicle(self, x: float, y: float, yaw: float, speed: float = 0.0, *,
                      half_length: float = 2.35, half_width: float = 0.95) -> int:
        """A SUMO vehicle pinned at a pose (centre, world frame), moving straight at ``speed``.

        SUMO traffic reacts to it; it appears in the Scene and ground truth at once."""
        self._check_episode()
        sumo = self._sumo
        actor_id = next(self._ids)
        vid, type_id = f"placed{actor_id}", f"placed_t{actor_id}"
        a = math.radians(yaw)
        fx, fy = x + half_length * math.cos(a), y + half_length * math.sin(a)
        try:
            edge, _pos, _lane = sumo.simulation.convertRoad(fx, -fy, False, "passenger")
            sumo.vehicletype.copy("DEFAULT_VEHTYPE", type_id)
            sumo.vehicletype.setLength(type_id, 2 * half_length)
            sumo.vehicletype.setWidth(type_id, 2 * half_width)
            sumo.route.add(f"r_{vid}", [edge])
            sumo.vehicle.add(vid, f"r_{vid}", typeID=type_id, departPos="0")
            sumo.vehicle.setSpeedMode(vid, 0)
            sumo.vehicle.setLaneChangeMode(vid, 0)
        except sumo.TraCIException as exc:
            raise EmbeddedWorldError(f"cannot place a vehicle at ({x:.1f}, {y:.1f}): {exc}") from None
        placed = PlacedVehicle(actor_id, vid, float(x), float(y), float(yaw), float(speed),
                               float(half_length), float(half_width))
        placed.sync(sumo)
        self.traffic.excluded.add(vid)
        self.scripted.placed.append(placed)
        self._table = None
        return actor_id

    # ------------------------------------------------------------------ internals
    def _check_open(self) -> None:
        if self._closed:
            raise EmbeddedWorldError(
                "this EmbeddedWorld is closed (libsumo runs one simulation per process; creating another "
                "world closes the previous one)")

    def _check_episode(self) -> None:
        self._check_open()
        if not self._episode:
            raise EmbeddedWorldError("EmbeddedWorld.reset(route, seed) must be called before stepping")

    def _insert_ego(self) -> None:
        sumo, p = self._sumo, self.config.ego
        if self._ego_routes == 0:
            sumo.vehicletype.copy("DEFAULT_VEHTYPE", "ego_t")
            sumo.vehicletype.setLength("ego_t", p.length)
            sumo.vehicletype.setWidth("ego_t", p.width)
            sumo.vehicletype.setMinGap("ego_t", 0.5)
            sumo.vehicletype.setMaxSpeed("ego_t", 60.0)
        route_id = f"ego_route{self._ego_routes}"
        self._ego_routes += 1
        try:
            sumo.route.add(route_id, self.track.edges)
            sumo.vehicle.add(EGO_SUMO_ID, route_id, typeID="ego_t", departPos="0", departLane="best")
            sumo.vehicle.setSpeedMode(EGO_SUMO_ID, 0)
            sumo.vehicle.setLaneChangeMode(EGO_SUMO_ID, 0)
        except sumo.TraCIException as exc:
            raise EmbeddedWorldError(
                f"route {self.track.route.id!r}: SUMO rejected the ego on edges {self.track.edges}: {exc}"
            ) from None
        self._ego_on_route = True
        self._sync_ego()

    def _sync_ego(self) -> None:
        """Move the SUMO ego to our ego's front bumper (SUMO frame and angle)."""
        sumo, e = self._sumo, self.ego
        fx, fy = e.front_bumper()
        angle = e.yaw_deg + 90.0
        on_route = self._route_distance() < (_BACK_ON_ROUTE if not self._ego_on_route else _OFF_ROUTE)
        if on_route and not self._ego_on_route:
            on_route = self._restore_ego_route()
        self._ego_on_route = on_route
        try:
            sumo.vehicle.moveToXY(EGO_SUMO_ID, "", -1, fx, -fy, angle, keepRoute=1 if on_route else 2)
        except sumo.TraCIException:
            try:
                sumo.vehicle.moveToXY(EGO_SUMO_ID, "", -1, fx, -fy, angle, keepRoute=2)
                self._ego_on_route = False
            except sumo.TraCIException as exc:  # e.g. the ego is far off any road: traffic can't see it
                log.debug("ego not moved into SUMO at t=%.2f: %s", self.time, exc)

    def _route_distance(self) -> float:
        """Distance of the ego from its route at the last Scene (one step old: fine for hysteresis)."""
        builder = getattr(self, "scene_builder", None)
        return 0.0 if builder is None or builder.track is not self.track else builder.route_offset

    def _restore_ego_route(self) -> bool:
        """Back near the route after driving off it: give the SUMO ego its route again."""
        sumo = self._sumo
        try:
            road = sumo.vehicle.getRoadID(EGO_SUMO_ID)
            if road in self.track.edges:
                sumo.vehicle.setRoute(EGO_SUMO_ID, self.track.edges[self.track.edges.index(road):])
                return True
        except sumo.TraCIException as exc:
            log.debug("ego route not restored: %s", exc)
        return False

    def _ensure_ego(self) -> None:
        """Re-insert the SUMO ego if SUMO removed it (arrival at its route's end, teleport)."""
        arrived = self._sumo.simulation.getArrivedIDList()
        if EGO_SUMO_ID in arrived:
            log.debug("SUMO removed the ego at t=%.2f; re-inserting", self.time)
            self._insert_ego()

    def _init_lights(self) -> None:
        sumo = self._sumo
        self._tls_links: dict[str, list[tuple[int, str]]] = {}
        # Fixed-time programs change state only at their scheduled switches: those are polled only
        # from the step before their next switch on; other programs every step.
        self._tls_static: dict[str, bool] = {}
        for tls in sumo.trafficlight.getIDList():
            links = sumo.trafficlight.getControlledLinks(tls)
            self._tls_links[tls] = [(i, f"{tls}_{i}") for i, group in enumerate(links)
                                    if group and not group[0][0].startswith(":")]
            self._tls_static[tls] = all(int(logic.type) == _TLS_STATIC
                                        for logic in sumo.trafficlight.getAllProgramLogics(tls))
        self._tls_state: dict[str, str] = {}
        self._tls_next: dict[str, float] = {}
        self._light_states: dict[str, str] = {}
        self._next_light_poll = -math.inf
        self._update_lights()

    def _update_lights(self) -> None:
        # SUMO applies a switch scheduled at time T in the step after T: polling from T - dt on (SUMO's
        # clock, which runs ahead of the world's by the reset steps) never misses one.
        horizon = self._sumo.simulation.getTime() + self.dt + 1e-6
        if horizon < self._next_light_poll:
            return
        from driving.worlds.embedded.perception import light_state

        tl = self._sumo.trafficlight
        get, next_switch = tl.getRedYellowGreenState, tl.getNextSwitch
        nexts = self._tls_next
        for tls, links in self._tls_links.items():
            if nexts.get(tls, -math.inf) > horizon:
                continue
            state = get(tls)
            nexts[tls] = next_switch(tls) if self._tls_static[tls] else -math.inf
            if state != self._tls_state.get(tls):
                self._tls_state[tls] = state
                for index, landmark in links:
                    self._light_states[landmark] = light_state(state, index)
        self._next_light_poll = min(nexts.values(), default=math.inf)

    def _spawn_route_jaywalkers(self, count: int) -> None:
        """``count`` pedestrians waiting beside the route ahead, crossing it when the ego approaches."""
        track, rng = self.track, self._rng
        if count <= 0 or track.length < 50.0:
            return
        for s in np.sort(rng.uniform(30.0, track.length - 15.0, size=count)).tolist():
            px, py = track.point_at(s)
            seg = int(np.clip(np.searchsorted(track.s, s) - 1, 0, len(track.seg_len) - 1))
            dx, dy = track.seg_dir[seg]
            side = 1.0 if rng.random() < 0.5 else -1.0  # +1: start on the right of the route
            offset = float(rng.uniform(3.5, 5.0))
            rx, ry = -dy * side * offset, dx * side * offset
            yaw = math.degrees(math.atan2(-ry, -rx))
            self.spawn_jaywalker(px + rx, py + ry, yaw, float(rng.uniform(1.0, 2.0)), math.inf,
                                 trigger_distance=float(rng.uniform(18.0, 30.0)), walk_distance=2 * offset)

    def _actor_table(self) -> ActorTable:
        if self._table is not None:
            return self._table
        ids, flags, data = self.traffic.read()
        if flags is not self._kinds_of[0]:  # the flags array changes only when the actor set does
            self._kinds_of = (flags, np.where(flags, KIND_VEHICLE, KIND_PEDESTRIAN).astype(np.int8))
        kinds = self._kinds_of[1]
        scripted = self.scripted
        placed = scripted.placed
        if scripted.jaywalkers or scripted.statics or placed:
            # Rows after SUMO's, in this order: jaywalkers, static props, placed vehicles. Their ids
            # and kinds change only when actors come or go: the concatenations are cached.
            s_ids, s_kinds, s_data = scripted.rows()
            extra_ids = (*s_ids, *(v.actor_id for v in placed))
            key = (ids, kinds, extra_ids)
            cached = self._extra_of
            if not (cached[0] is ids and cached[1] is kinds and cached[2] == extra_ids):
                extra_kinds = [*s_kinds, *([KIND_VEHICLE] * len(placed))]
                cached = self._extra_of = (*key, np.concatenate([ids, np.array(extra_ids, dtype=np.int64)]),
                                           np.concatenate([kinds, np.array(extra_kinds, dtype=np.int8)]))
            ids, kinds = cached[3], cached[4]
            parts = [data, s_data]
            if placed:
                parts.append(np.array([(v.x, v.y, v.yaw, v.speed, v.half_length, v.half_width) for v in placed],
                                      dtype=float).reshape(-1, 6))
            data = np.concatenate(parts)
        table_data = data
        if table_data.shape[0]:
            yaw = np.mod(table_data[:, 2] + 180.0, 360.0) - 180.0
            yaw[yaw == -180.0] = 180.0
            table_data[:, 2] = yaw
        self._table = ActorTable(ids, kinds, table_data, has_static=bool(self.scripted.statics))
        return self._table

    def _build_scene(self) -> Scene:
        e, p = self.ego, self.config.ego
        ego = EgoState(e.x, e.y, wrap_degrees(math.degrees(e.yaw)), e.speed, e.acceleration,
                       p.half_length, p.half_width, self._control.steer)
        return self.scene_builder.build(self.frame, self.time, ego, self._actor_table(),
                                        self._tls_state.__getitem__)
