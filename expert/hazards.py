"""Actors as hazards: who is in the ego's path (IDM following) and who may cross it (forecast).

- *In the path*: an actor whose box reaches within ``path_margin`` of the ego's swept corridor along
  the route ahead. Aligned vehicles are leaders (IDM with their speed along the route); anything else
  in the corridor (a crossing car, a pedestrian, a prop) is an obstacle to stop behind.
- *Crossing*: every other relevant actor is forecast and tested against the ego's forecast. A
  conflict makes the ego stop before the first position where its box would overlap; if stopping
  now would not avoid a conflict any earlier than going on (the ego is already in the way), it goes on.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from driving.geometry import obb_overlap
from driving.scene import Actor, Scene
from expert.config import ExpertConfig
from expert.forecast import (
    ActorForecast,
    CurvatureLaw,
    EgoForecast,
    ego_rollout,
    first_conflict,
    forecast_actors,
    overlaps,
)
from expert.lateral import off_route, planned_curvature
from expert.longitudinal import SpeedCap, idm_speed, stop_speed
from expert.path import RoutePath, wrap_rad


@dataclass
class ActorTable:
    """The Scene's actors as ego-frame arrays, projected onto the route."""

    actors: list[Actor]
    x: np.ndarray
    y: np.ndarray
    yaw: np.ndarray  # rad, relative to the ego's heading
    speed: np.ndarray
    half_length: np.ndarray
    half_width: np.ndarray
    along: np.ndarray  # m along the route of the centre's projection
    lateral: np.ndarray  # m from the route, positive = right
    rel: np.ndarray  # rad, heading relative to the route at the projection

    @classmethod
    def of(cls, scene: Scene, path: RoutePath, radius: float) -> ActorTable:
        actors = [a for a in (*scene.vehicles, *scene.pedestrians, *scene.obstacles) if a.distance <= radius]
        rows = np.array([(a.ego_x, a.ego_y, math.radians(a.ego_yaw), a.speed, a.half_length, a.half_width)
                         for a in actors], dtype=float).reshape(-1, 6)
        along, lateral, heading = path.project(rows[:, 0], rows[:, 1]) if actors else (np.zeros(0),) * 3
        rel = wrap_rad(rows[:, 2] - heading)
        return cls(actors, rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3], rows[:, 4], rows[:, 5],
                   along, lateral, np.asarray(rel))


def path_caps(scene: Scene, table: ActorTable, path: RoutePath, cfg: ExpertConfig
              ) -> tuple[list[SpeedCap], set[int]]:
    """Caps for the actors in the ego's path, and the ids of the leaders among them."""
    caps: list[SpeedCap] = []
    leaders: set[int] = set()
    if not table.actors:
        return caps, leaders
    ego = scene.ego
    s_rel, c_rel = np.abs(np.sin(table.rel)), np.abs(np.cos(table.rel))
    across = table.half_length * s_rel + table.half_width * c_rel
    along_ext = table.half_length * c_rel + table.half_width * s_rel
    margin = np.array([cfg.pedestrian_path_margin if a.kind == "pedestrian" else cfg.path_margin
                       for a in table.actors])
    # ahead: its near end beyond a point a metre behind the front bumper (one beside the ego is not
    # in its way forward; the forecast looks after it)
    ahead = table.along - along_ext > ego.half_length - 1.0
    in_path = ((np.abs(table.lateral) < ego.half_width + across + margin) & (table.x > 0.0) & ahead
               & (table.along < cfg.path_horizon))
    aligned_limit = math.radians(cfg.aligned_angle)
    for i in np.flatnonzero(in_path).tolist():
        actor = table.actors[i]
        gap = float(table.along[i] - ego.half_length - along_ext[i])
        rel = float(table.rel[i])
        if actor.kind == "vehicle":
            aligned = abs(rel) < aligned_limit
            lead = float(table.speed[i]) * math.cos(rel)
            speed = idm_speed(gap, lead, cfg.follow_s0, cfg.follow_time_gap if aligned else 0.0,
                              cfg.idm_accel, cfg.idm_decel)
            if aligned:
                leaders.add(actor.id)
            caps.append(SpeedCap(speed, "vehicle", gap, actor.id))
        else:
            s0 = cfg.pedestrian_s0 if actor.kind == "pedestrian" else cfg.static_s0
            caps.append(SpeedCap(stop_speed(gap - s0, cfg), actor.kind, gap, actor.id))
    return caps, leaders


def contact_cap(scene: Scene, cfg: ExpertConfig) -> SpeedCap | None:
    """Hold still while a walker or a car touches the standing ego: SUMO's actors do not always see the
    ego and may walk or drive into it, and moving off with one against the car is a collision
    (standing still is not). A car stuck like that is removed by the world's jam breaker."""
    ego = scene.ego
    if abs(ego.speed) > cfg.contact_speed:
        return None
    near = [a for a in (*scene.pedestrians, *scene.vehicles) if a.distance < 8.0]
    if not near:
        return None
    m = [cfg.contact_margin if a.kind == "pedestrian" else cfg.vehicle_contact_margin for a in near]
    boxes = np.array([(a.ego_x, a.ego_y, a.ego_yaw, a.half_length + mi, a.half_width + mi)
                      for a, mi in zip(near, m, strict=True)])
    hits = obb_overlap((0.0, 0.0, 0.0, ego.half_length, ego.half_width), boxes)
    if not hits.any():
        return None
    actor = near[int(np.flatnonzero(hits)[0])]
    return SpeedCap(0.0, f"{actor.kind}_contact", 0.0, actor.id)


def start_guard_cap(scene: Scene, cfg: ExpertConfig) -> SpeedCap | None:
    """Do not start off while a moving vehicle sweeps close past the front of the (nearly) standing
    ego: turning cars curve, their straight-line forecast does not, and a touch while rolling counts."""
    ego = scene.ego
    if abs(ego.speed) > cfg.start_guard_speed:
        return None
    # crossing or turning ones only: a leader pulling away is the IDM's, oncoming ones keep their lane
    near = [a for a in scene.vehicles if a.distance < 15.0 and abs(a.speed) > 1.0
            and 30.0 < abs(a.ego_yaw) < cfg.oncoming_angle]
    if not near:
        return None
    reach, m = cfg.start_guard_reach, cfg.start_guard_margin
    zone = (0.5 * reach, 0.0, 0.0, ego.half_length + 0.5 * reach, ego.half_width + m)
    boxes = np.array([(a.ego_x, a.ego_y, a.ego_yaw, a.half_length + m, a.half_width + m) for a in near])
    hits = obb_overlap(zone, boxes)
    if not hits.any():
        return None
    return SpeedCap(0.0, "start_guard", 0.0, near[int(np.flatnonzero(hits)[0])].id)


def nudge_offset(scene: Scene, table: ActorTable, cfg: ExpertConfig) -> float:
    """Sideways offset (m, positive = right) to pass standing walkers and props close to the path with
    ``nudge_clearance`` to spare, at most ``max_nudge``; 0 when none, or when both sides need room."""
    if not table.actors:
        return 0.0
    half = scene.ego.half_width
    need = {1.0: 0.0, -1.0: 0.0}  # room wanted on the right / left of the ego's path
    for i, actor in enumerate(table.actors):
        standing = actor.kind == "static" or (actor.kind == "pedestrian"
                                              and abs(actor.speed) <= cfg.pedestrian_standing_speed)
        if not standing or not 0.0 < table.along[i] < cfg.nudge_horizon:
            continue
        rel = float(table.rel[i])
        across = actor.half_length * abs(math.sin(rel)) + actor.half_width * abs(math.cos(rel))
        clearance = abs(float(table.lateral[i])) - half - across
        if -cfg.max_nudge < clearance < cfg.nudge_clearance:
            side = 1.0 if table.lateral[i] >= 0.0 else -1.0
            need[side] = max(need[side], cfg.nudge_clearance - clearance)
    if need[1.0] > 0.0 and need[-1.0] > 0.0:
        return 0.0
    return -min(need[1.0], cfg.max_nudge) if need[1.0] > 0.0 else min(need[-1.0], cfg.max_nudge)


def followers(table: ActorTable, trail: np.ndarray | None, cfg: ExpertConfig) -> set[int]:
    """Vehicles on the route the ego has just driven (``trail``: ego-frame points, oldest first, the
    last one the ego's projection), heading along it: they follow the ego, even round a curve."""
    if trail is None or len(trail) < 2 or not table.actors:
        return set()
    seg = np.diff(trail, axis=0)
    length = np.maximum(np.hypot(seg[:, 0], seg[:, 1]), 1e-9)
    u = seg / length[:, None]
    rx = table.x[:, None] - trail[None, :-1, 0]
    ry = table.y[:, None] - trail[None, :-1, 1]
    t = np.clip(rx * u[None, :, 0] + ry * u[None, :, 1], 0.0, length[None, :])
    d2 = (rx - t * u[None, :, 0]) ** 2 + (ry - t * u[None, :, 1]) ** 2
    k = np.argmin(d2, axis=1)
    rows = np.arange(len(table.actors))
    heading = np.arctan2(u[k, 1], u[k, 0])
    aligned = np.abs(wrap_rad(table.yaw - heading)) < math.radians(cfg.aligned_angle)
    on_trail = np.sqrt(d2[rows, k]) < cfg.trail_width
    return {table.actors[i].id for i in np.flatnonzero(aligned & on_trail & (table.x < 0.0)).tolist()
            if table.actors[i].kind == "vehicle"}


def junction_within_reach(scene: Scene, path: RoutePath, cfg: ExpertConfig) -> bool:
    if scene.in_junction:
        return True
    spans = path.junctions()
    reach = max(cfg.junction_reach, max(scene.ego.speed, 0.0) * cfg.junction_horizon)
    return bool(spans) and spans[0].start <= reach


def conflict_cap(scene: Scene, table: ActorTable, path: RoutePath, cfg: ExpertConfig, ignore: set[int],
                 limits: np.ndarray, stop_at: float, aim: Callable[[float], float]) -> SpeedCap | None:
    """A cap from the first forecast overlap between the ego (going on at up to ``limits``, never
    past ``stop_at`` m) and the actors that may cross its path (not those in ``ignore``: leaders,
    followers); None when the way is clear."""
    if not table.actors:
        return None
    ego = scene.ego
    v = max(float(ego.speed), 0.0)
    near_junction = junction_within_reach(scene, path, cfg)
    kinds = [a.kind for a in table.actors]
    is_vehicle = np.array([k == "vehicle" for k in kinds])
    is_ped = np.array([k == "pedestrian" for k in kinds])
    ego_rel = np.abs(wrap_rad(table.yaw))
    relevant = np.array([a.id not in ignore for a in table.actors])
    # traffic behind the ego going its way is the followers' business
    relevant &= ~(is_vehicle & (table.x < -ego.half_length) & (ego_rel < math.radians(cfg.rear_ignore_angle)))
    # so are walkers beside the ego walking its way: the car is ahead of them (a straight-line forecast
    # of one on the pavement meets the car only where the car turns away across its line)
    relevant &= ~(is_ped & (table.x < ego.half_length - 0.5) & (np.abs(table.lateral) > ego.half_width + 0.5)
                  & (ego_rel < math.radians(cfg.walker_along_angle)))
    if not near_junction:
        # on open road other vehicles keep their lanes; those entering the path are leaders (IDM)
        abs_rel = np.abs(table.rel)
        lane_bound = (abs_rel < math.radians(cfg.aligned_angle)) | (abs_rel > math.radians(cfg.oncoming_angle))
        relevant &= ~(is_vehicle & lane_bound)
    # only actors that can reach the ego's forecast in time
    horizon_v = cfg.junction_horizon if near_junction else cfg.forecast_horizon
    horizon = np.where(is_vehicle, horizon_v, np.where(is_ped, cfg.pedestrian_horizon, cfg.forecast_horizon))
    reach = (max(v, float(limits.max())) * horizon + np.abs(table.speed) * horizon + table.half_length
             + ego.half_length + 6.0)
    relevant &= np.hypot(table.x, table.y) < reach
    idx = np.flatnonzero(relevant)
    if idx.size == 0:
        return None
    dt = cfg.forecast_dt
    steps = np.round(horizon[idx] / dt).astype(int)
    state = np.stack([table.x[idx], table.y[idx], table.yaw[idx], table.speed[idx],
                      table.half_length[idx], table.half_width[idx]], axis=1)
    ped = is_ped[idx]
    static = np.array([kinds[i] == "static" for i in idx.tolist()])
    moving = np.abs(state[:, 3]) > 1.0
    width_margin = np.where(ped, cfg.pedestrian_side_margin,
                            np.where(static | ~moving, 0.05, cfg.vehicle_width_margin))
    # a walker standing at the kerb is only where it stands (SUMO walkers wait there for a gap)
    walking = np.abs(state[:, 3]) > cfg.pedestrian_standing_speed
    extra = np.where(ped & walking, cfg.pedestrian_margin, 0.0)
    state[:, 4] += extra
    time_margin = np.where(ped, cfg.pedestrian_time_margin, cfg.vehicle_time_margin)
    wheelbase = np.maximum(2.0 * state[:, 4] * cfg.vehicle_wheelbase_ratio, 0.5)
    ids = [table.actors[i].id for i in idx.tolist()]
    names = [kinds[i] for i in idx.tolist()]
    actors = forecast_actors(ids, names, state, steps, dt, width_margin, time_margin, wheelbase, extra)
    total = int(steps.max())
    max_wheel = math.radians(cfg.max_steer_deg)
    law = _curvature_law(path, cfg, aim)
    proceed = ego_rollout(path, v, cfg.proceed_accel, limits, stop_at, total, dt, cfg.wheelbase, max_wheel, law)
    proceed_boxes = _ego_boxes(proceed, scene, cfg)
    standing_boxes = proceed.boxes(ego.half_length, ego.half_width, cfg.standing_margin, 0.0, cfg.standing_margin)
    standing = np.array([k != "pedestrian" for k in actors.kinds]) & (np.abs(state[:, 3]) < 0.5)
    active = np.ones(len(actors.ids), dtype=bool)
    ego_now = np.array([0.0, 0.0, 0.0, ego.half_length, ego.half_width])
    rear = math.radians(cfg.rear_ignore_angle)
    spans = path.junctions()
    # travel until the front bumper reaches the next junction (None once inside one)
    entry = spans[0].start - ego.half_length if spans and not scene.in_junction else None
    if entry is not None and entry < -0.5:
        entry = None
    while True:
        # a standing vehicle or prop is where it is: it gets the ego's small "standing" margins only
        # (a car waiting at its stop line beside a tight turn is passed, not waited for forever)
        conflict = first_conflict(proceed_boxes, proceed.s, actors, dt, active & ~standing, ego_now)
        near = first_conflict(standing_boxes, proceed.s, actors, dt, active & standing, ego_now)
        if near is not None and (conflict is None or near.step < conflict.step):
            conflict = near
        if conflict is None:
            return None
        j = conflict.actor
        room = max(conflict.s_before - cfg.conflict_s0, 0.0)
        behind = actors.boxes[0, j, 0] < 0.0 and abs(wrap_rad(math.radians(actors.boxes[0, j, 2]))) < rear
        if actors.kinds[j] == "vehicle" and behind and _yield_fails(scene, path, cfg, actors, j, room, total, law):
            # a vehicle from behind that would run into the ego wherever it stops: stopping would not
            # help (a straight-line forecast of a car following the ego round a curve looks like this)
            active[j] = False
            continue
        kind = f"conflict_{actors.kinds[j]}"
        # a conflict in (or beyond) the junction ahead: wait at its entry, not on its crossings
        if entry is not None and conflict.s_before > entry:
            room = min(room, max(entry - cfg.junction_wait_s0, 0.0))
        elif scene.in_junction and actors.kinds[j] == "vehicle" and moving[j] and cfg.junction_hold:
            # already inside: stop where it is rather than creep up to a moving car's forecast path
            # (a turning car's path curves away from its straight-line forecast, towards the ego)
            room = 0.0
        speed = stop_speed(room, cfg) if room > 0.5 else 0.0
        return SpeedCap(speed, kind, conflict.s_before, actors.ids[j])


def _yield_fails(scene: Scene, path: RoutePath, cfg: ExpertConfig, actors: ActorForecast, column: int,
                 room: float, steps: int, law: CurvatureLaw) -> bool:
    """Whether actor ``column`` still meets the ego if the ego stops within ``room`` metres."""
    ego = scene.ego
    stopping = ego_rollout(path, max(float(ego.speed), 0.0), -cfg.brake_decel, None, room, steps, cfg.forecast_dt,
                           cfg.wheelbase, math.radians(cfg.max_steer_deg), law)
    boxes = stopping.boxes(ego.half_length, ego.half_width, 0.2, 0.0, 0.1)
    return overlaps(boxes, actors, column)


def _curvature_law(path: RoutePath, cfg: ExpertConfig, aim: Callable[[float], float]) -> CurvatureLaw:
    """The expert's lateral law at any forecast pose (``expert.lateral``)."""

    def law(x: float, y: float, yaw: float, s: float, v: float) -> float:
        if off_route(path, cfg, x, y, yaw, s):
            ax, ay = path.point_at(s + aim(v))
            c, sn = math.cos(yaw), math.sin(yaw)
            lx, ly = c * (ax - x) + sn * (ay - y), -sn * (ax - x) + c * (ay - y)
            return 2.0 * ly / max(lx * lx + ly * ly, 1e-6)
        return planned_curvature(path, v, cfg, x, y, yaw, s)

    return law


def _ego_boxes(forecast: EgoForecast, scene: Scene, cfg: ExpertConfig) -> np.ndarray:
    return forecast.boxes(scene.ego.half_length, scene.ego.half_width, cfg.ego_length_margin,
                          cfg.ego_length_margin_per_speed, cfg.ego_width_margin, cfg.ego_width_margin_per_speed)
