"""Lateral control: the steering angle of the expert's action.

The expert plans the arc it wants to drive on: the route's curvature just ahead (feed-forward, a
short preview covering the steering lag) plus feedback on its heading and lateral errors, tuned as
a critically damped second-order system in time (``kappa = kappa_route + 2 zeta w / v * e_heading +
w^2 / v^2 * e_lateral``). Its action is the angle to the point on that arc at the shared
``driving.actions.aim_distance``, which the ``ActionController`` turns back into exactly that arc by
pure pursuit. Plain pure pursuit on the route would cut every corner by ~L^2 / (8 R).
"""

from __future__ import annotations

import math

from expert.config import ExpertConfig
from expert.path import RoutePath


def planned_curvature(path: RoutePath, speed: float, cfg: ExpertConfig, x: float = 0.0, y: float = 0.0,
                      yaw: float = 0.0, s: float = 0.0) -> float:
    """Curvature (1/m, positive = right) of the arc to drive from pose (``x, y, yaw`` ego frame, rad)
    whose route reference is ``s`` metres along the path (default: the ego now, at the projection)."""
    px, py = path.point_at(s)
    psi = path.heading_at(s) - yaw
    psi = (psi + math.pi) % (2.0 * math.pi) - math.pi
    # the route's offset to the car's right, measured across the route
    h = yaw + psi
    e_lat = (px - x) * -math.sin(h) + (py - y) * math.cos(h)
    v = max(abs(speed), cfg.lateral_min_speed)
    preview = max(cfg.preview_min, abs(speed) * cfg.preview_time)
    kappa_ff = path.curvature_at(s + preview, cfg.steer_curvature_window)
    # on an arc the car's body yaws less than its velocity by the slip angle asin(kappa L / 2) of the
    # centre-referenced bicycle: that part of the heading error is not an error
    slip = math.asin(max(-1.0, min(1.0, 0.5 * kappa_ff * cfg.wheelbase)))
    w = cfg.lateral_omega
    return kappa_ff + 2.0 * cfg.lateral_damping * w / v * (psi - slip) + (w * w) / (v * v) * e_lat


def off_route(path: RoutePath, cfg: ExpertConfig, x: float = 0.0, y: float = 0.0, yaw: float = 0.0,
              s: float = 0.0) -> bool:
    """Whether the pose is too far off the route for the linear feedback (recover by pure pursuit)."""
    px, py = path.point_at(s)
    psi = (path.heading_at(s) - yaw + math.pi) % (2.0 * math.pi) - math.pi
    return math.hypot(px - x, py - y) > cfg.recover_offset or abs(psi) > math.radians(cfg.recover_angle)


def steering_angle(path: RoutePath, speed: float, aim: float, cfg: ExpertConfig) -> float:
    """Degrees (positive = right) to the point ``aim`` metres away on the planned arc.

    Far off the route (after a dead-end U-turn tighter than the car can turn, say) the linear
    feedback no longer holds: then the angle is plain pure pursuit to the route point ``aim`` metres
    away, which may lie behind the car (the controller then steers fully towards it).
    """
    if off_route(path, cfg):
        ax, ay = path.point_beyond(aim)
        return math.degrees(math.atan2(ay, ax))
    kappa = planned_curvature(path, speed, cfg)
    return math.degrees(math.asin(max(-1.0, min(1.0, 0.5 * kappa * aim))))
