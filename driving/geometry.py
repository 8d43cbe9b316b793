"""Oriented-box geometry: the authoritative collision check of the embedded world.

Boxes are ``(x, y, yaw_deg, half_length, half_width)`` in the CARLA world frame (see
``driving.scene``). Overlap uses the separating-axis theorem on the four edge normals of the two
rectangles, vectorised over many boxes at once, after a cheap circle prefilter (bounding circles
of radius ``hypot(half_length, half_width)``): with 100 actors almost all are rejected there.

Touching boxes (separation exactly zero) do not overlap; interpenetration of any depth does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from driving.types import ActorBox

BOX_FIELDS = ("x", "y", "yaw", "half_length", "half_width")


def boxes_to_array(boxes: Iterable[ActorBox]) -> np.ndarray:
    """Stack boxes into an ``(N, 5)`` float array of ``x, y, yaw_deg, half_length, half_width``."""
    rows = [(b.x, b.y, b.yaw, b.half_length, b.half_width) for b in boxes]
    if not rows:
        return np.zeros((0, 5), dtype=float)
    return np.asarray(rows, dtype=float)


def box_corners(x: float, y: float, yaw_deg: float, half_length: float, half_width: float) -> np.ndarray:
    """The four corners (4, 2) of an oriented box: front-left, front-right, rear-right, rear-left.

    "Left"/"right" are in CARLA's left-handed frame (+y of the box frame is the box's right).
    """
    c, s = math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))
    fwd = np.array([c, s]) * half_length
    right = np.array([-s, c]) * half_width
    centre = np.array([x, y], dtype=float)
    return np.stack([centre + fwd - right, centre + fwd + right, centre - fwd + right, centre - fwd - right])


def obb_overlap(box: Sequence[float] | np.ndarray, others: np.ndarray, prefilter: bool = True) -> np.ndarray:
    """Which of ``others`` (N, 5) overlap ``box`` (5,): a boolean array of length N.

    Separating-axis test on the 2 axes of each rectangle; with ``prefilter`` the test runs only on
    boxes whose bounding circles intersect.
    """
    others = np.asarray(others, dtype=float).reshape(-1, 5)
    n = others.shape[0]
    result = np.zeros(n, dtype=bool)
    if n == 0:
        return result
    bx, by, byaw, bhl, bhw = (float(v) for v in box)
    dx = others[:, 0] - bx
    dy = others[:, 1] - by
    if prefilter:
        reach = math.hypot(bhl, bhw) + np.hypot(others[:, 3], others[:, 4])
        candidates = np.flatnonzero(dx * dx + dy * dy < reach * reach)
        if candidates.size == 0:
            return result
    else:
        candidates = np.arange(n)
    o = others[candidates]
    dx, dy = dx[candidates], dy[candidates]
    a = math.radians(byaw)
    ac, as_ = math.cos(a), math.sin(a)
    oyaw = np.radians(o[:, 2])
    oc, os_ = np.cos(oyaw), np.sin(oyaw)
    ohl, ohw = o[:, 3], o[:, 4]
    # cos of the angle between the box's forward axis and the other's forward axis, and the
    # cross term; the projections of each box's half-extents onto any of the four axes follow.
    cos_d = ac * oc + as_ * os_
    sin_d = ac * os_ - as_ * oc
    abs_cos, abs_sin = np.abs(cos_d), np.abs(sin_d)
    # Axis 1, 2: the box's own forward (ac, as_) and right (-as_, ac) axes.
    d_f = dx * ac + dy * as_
    d_r = -dx * as_ + dy * ac
    sep1 = np.abs(d_f) >= bhl + ohl * abs_cos + ohw * abs_sin
    sep2 = np.abs(d_r) >= bhw + ohl * abs_sin + ohw * abs_cos
    # Axis 3, 4: the other box's forward and right axes.
    e_f = dx * oc + dy * os_
    e_r = -dx * os_ + dy * oc
    sep3 = np.abs(e_f) >= ohl + bhl * abs_cos + bhw * abs_sin
    sep4 = np.abs(e_r) >= ohw + bhl * abs_sin + bhw * abs_cos
    result[candidates] = ~(sep1 | sep2 | sep3 | sep4)
    return result


def overlapping_actors(ego: ActorBox, actors: Sequence[ActorBox]) -> list[ActorBox]:
    """The actors whose oriented boxes overlap the ego's."""
    if not actors:
        return []
    mask = obb_overlap((ego.x, ego.y, ego.yaw, ego.half_length, ego.half_width), boxes_to_array(actors))
    return [a for a, hit in zip(actors, mask, strict=True) if hit]


def segments_intersect(
    p1: tuple[float, float], p2: tuple[float, float], q1: tuple[float, float], q2: tuple[float, float]
) -> bool:
    """Whether closed segments p1-p2 and q1-q2 share a point (touching and collinear overlap count)."""

    def orient(a: tuple[float, float], b: tuple[float, float], c: tuple[float, float]) -> float:
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])

    def on_segment(a: tuple[float, float], b: tuple[float, float], c: tuple[float, float]) -> bool:
        return min(a[0], b[0]) - 1e-12 <= c[0] <= max(a[0], b[0]) + 1e-12 and (
            min(a[1], b[1]) - 1e-12 <= c[1] <= max(a[1], b[1]) + 1e-12
        )

    d1, d2 = orient(q1, q2, p1), orient(q1, q2, p2)
    d3, d4 = orient(p1, p2, q1), orient(p1, p2, q2)
    if ((d1 > 0 > d2) or (d1 < 0 < d2)) and ((d3 > 0 > d4) or (d3 < 0 < d4)):
        return True
    return (
        (d1 == 0 and on_segment(q1, q2, p1))
        or (d2 == 0 and on_segment(q1, q2, p2))
        or (d3 == 0 and on_segment(p1, p2, q1))
        or (d4 == 0 and on_segment(p1, p2, q2))
    )


def point_in_box(
    px: float, py: float, cx: float, cy: float, yaw_deg: float, half_length: float, half_width: float
) -> bool:
    """Whether a point lies strictly inside an oriented box."""
    c, s = math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))
    dx, dy = px - cx, py - cy
    along = c * dx + s * dy
    across = -s * dx + c * dy
    return abs(along) < half_length and abs(across) < half_width
