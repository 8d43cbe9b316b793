"""Target speeds: IDM-style following and stopping, curves, junctions, traffic lights, stop signs.

Every rule returns a *speed cap* (m/s) that the shared speed controller tracks; the expert's target is
the lowest cap. Following and stopping use the equilibrium of the Intelligent Driver Model: the speed
``v`` at which IDM's desired gap ``s0 + v T + v (v - v_lead) / (2 sqrt(a b))`` equals the actual gap.
Behind a standing obstacle that is a stopping envelope with deceleration ``sqrt(a b)`` plus a time
gap; behind a vehicle moving at ``v_lead`` it is ``v = (gap - s0) / T`` once the speeds match. Because
the cap falls smoothly as the gap closes, the label sequence is MOVE -> SLOW -> STOP, not a cliff.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from driving.scene import Scene
from expert.config import ExpertConfig
from expert.path import RoutePath


@dataclass(frozen=True)
class SpeedCap:
    """One reason to drive no faster than ``speed``."""

    speed: float  # m/s
    kind: str  # cruise | curve | junction | red_light | yellow_light | stop_sign | vehicle | pedestrian | ...
    distance: float | None = None  # m to what caused it (stop line, gap, conflict), if any
    actor_id: int | None = None


def idm_speed(gap: float, lead_speed: float, s0: float, time_gap: float, accel: float, decel: float) -> float:
    """IDM equilibrium speed for a bumper-to-bumper ``gap`` (m) behind a leader at ``lead_speed`` (m/s).

    Solves ``k v^2 + (T - k v_lead) v - (gap - s0) = 0`` with ``k = 1 / (2 sqrt(a b))`` for v >= 0.
    """
    room = gap - s0
    if room <= 0.0:
        return 0.0
    lead = max(lead_speed, 0.0)
    k = 1.0 / (2.0 * math.sqrt(accel * decel))
    b = time_gap - k * lead
    return (-b + math.sqrt(b * b + 4.0 * k * room)) / (2.0 * k)


def stop_speed(distance: float, cfg: ExpertConfig) -> float:
    """Highest speed from which the IDM profile stops within ``distance`` metres."""
    return idm_speed(distance, 0.0, 0.0, 0.0, cfg.idm_accel, cfg.idm_decel)


def cruise_speed(scene: Scene, cfg: ExpertConfig) -> float:
    return max(0.0, min(cfg.max_speed, cfg.cruise_factor * float(scene.speed_limit)))


def curve_cap(path: RoutePath, cfg: ExpertConfig) -> SpeedCap | None:
    """The tightest curve ahead, as a cap that already allows for braking towards it."""
    if path.n < 3:
        return None
    kappa = path.curvature(cfg.curvature_window)
    near = path.s <= cfg.curve_horizon
    if not near.any():
        return None
    v_curve = np.sqrt(cfg.lateral_accel / np.maximum(kappa[near], 1e-6))
    v_curve = np.maximum(v_curve, cfg.min_curve_speed)
    reach = np.sqrt(v_curve ** 2 + 2.0 * cfg.plan_decel * np.maximum(path.s[near], 0.0))
    i = int(np.argmin(reach))
    return SpeedCap(float(reach[i]), "curve", float(path.s[near][i]))


def limit_profile(path: RoutePath, scene: Scene, cfg: ExpertConfig) -> np.ndarray:
    """Allowed speed (m/s) at every path point from the limit, curves and junctions, with the braking
    towards every lower speed further on already applied (``plan_decel``)."""
    limit = np.full(path.n, cruise_speed(scene, cfg))
    if path.n >= 3:
        kappa = path.curvature(cfg.curvature_window)
        limit = np.minimum(limit, np.maximum(np.sqrt(cfg.lateral_accel / np.maximum(kappa, 1e-6)),
                                             cfg.min_curve_speed))
    for span in path.junctions():
        limit[(path.s >= span.start) & (path.s <= span.end)] = np.minimum(
            limit[(path.s >= span.start) & (path.s <= span.end)], cfg.junction_speed)
    # allowed_i = min_{j >= i} sqrt(v_j^2 + 2 b (s_j - s_i)): a reversed running minimum
    energy = limit ** 2 + 2.0 * cfg.plan_decel * path.s
    reach = np.minimum.accumulate(energy[::-1])[::-1]
    return np.sqrt(np.maximum(reach - 2.0 * cfg.plan_decel * path.s, 0.0))


def junction_cap(path: RoutePath, scene: Scene, cfg: ExpertConfig) -> SpeedCap | None:
    """``junction_speed`` inside junctions, braking towards it before the next one."""
    if scene.in_junction:
        return SpeedCap(cfg.junction_speed, "junction", 0.0)
    spans = path.junctions()
    if not spans:
        return None
    start = max(spans[0].start, 0.0)
    return SpeedCap(math.sqrt(cfg.junction_speed ** 2 + 2.0 * cfg.plan_decel * start), "junction", start)


def light_cap(scene: Scene, cfg: ExpertConfig) -> SpeedCap | None:
    """Stop before a red light's line, and before a yellow one when that is comfortable."""
    light = scene.traffic_light
    if light is None or light.state not in ("red", "yellow"):
        return None
    d = float(light.distance_to_stop_line)
    v = max(float(scene.ego.speed), 0.0)
    if d < 0.0:
        # front bumper already past the line: a slow ego holds (moving on would take its tail over a red
        # line); a fast one is through already
        if light.state == "red" and v < cfg.hold_past_line_speed:
            return SpeedCap(0.0, "red_light", d)
        return None
    room = d - cfg.light_s0
    needed = v * v / (2.0 * max(d, 0.05))  # deceleration to stop at the line
    # go on yellow only when stopping is not comfortable, and never once braking for it (the ego's own
    # deceleration tells, so the decision holds without memory while the stop profile is followed)
    braking = scene.ego.acceleration < -cfg.braking_accel and needed < cfg.red_max_decel
    if light.state == "yellow" and needed > cfg.yellow_decel and not braking:
        return None
    if light.state == "red" and v * v / (2.0 * cfg.red_max_decel) > d + 1.8 * scene.ego.half_length:
        return None  # even braking hard the tail would cross the line: clear the junction instead
    speed = idm_speed(room, 0.0, 0.0, cfg.light_time_gap, cfg.idm_accel, cfg.idm_decel)
    return SpeedCap(speed, f"{light.state}_light", d)


def stop_sign_cap(scene: Scene, cfg: ExpertConfig) -> SpeedCap | None:
    """Stop at the first stop sign not yet cleared (the world clears it once the ego has stood there)."""
    for sign in scene.stop_signs:
        if sign.cleared:
            continue
        d = float(sign.distance_to_stop_line)
        if d < -1.0:
            continue  # passed without the world registering it: nothing left to do
        return SpeedCap(stop_speed(d - cfg.stop_sign_s0, cfg), "stop_sign", d)
    return None
