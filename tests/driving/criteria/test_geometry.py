"""Oriented-box separating-axis overlap, checked against an independent polygon-clipping area."""

from __future__ import annotations

import numpy as np

from driving.geometry import box_corners, obb_overlap, overlapping_actors, point_in_box, segments_intersect
from driving.types import ActorBox


def _clip_area(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection area of two convex polygons (Sutherland-Hodgman), an independent reference."""

    def inside(p, e0, e1):
        return (e1[0] - e0[0]) * (p[1] - e0[1]) - (e1[1] - e0[1]) * (p[0] - e0[0]) >= 0

    def cross_point(p, q, e0, e1):
        d1, d2 = q - p, e1 - e0
        t = ((e0[0] - p[0]) * d2[1] - (e0[1] - p[1]) * d2[0]) / (d1[0] * d2[1] - d1[1] * d2[0])
        return p + t * d1

    def ccw(poly):
        area = 0.5 * sum(poly[i][0] * poly[i - 1][1] - poly[i - 1][0] * poly[i][1] for i in range(len(poly)))
        return poly if area < 0 else poly[::-1]

    out = list(ccw(a))
    clip = ccw(b)
    for i in range(len(clip)):
        e0, e1 = clip[i - 1], clip[i]
        src, out = out, []
        for j in range(len(src)):
            p, q = src[j - 1], src[j]
            if inside(q, e0, e1):
                if not inside(p, e0, e1):
                    out.append(cross_point(p, q, e0, e1))
                out.append(q)
            elif inside(p, e0, e1):
                out.append(cross_point(p, q, e0, e1))
        if not out:
            return 0.0
    return abs(0.5 * sum(out[i][0] * out[i - 1][1] - out[i - 1][0] * out[i][1] for i in range(len(out))))


def test_overlap_matches_polygon_clipping_on_random_boxes() -> None:
    rng = np.random.default_rng(0)
    ego = (0.0, 0.0, 30.0, 2.4, 1.0)
    others = np.column_stack([
        rng.uniform(-7, 7, 400), rng.uniform(-7, 7, 400), rng.uniform(-180, 180, 400),
        rng.uniform(0.2, 3.0, 400), rng.uniform(0.2, 1.5, 400),
    ])
    got = obb_overlap(ego, others)
    assert np.array_equal(got, obb_overlap(ego, others, prefilter=False))
    ref = np.array([_clip_area(box_corners(*ego), box_corners(*o)) > 1e-9 for o in others])
    # skip the handful of razor-thin contacts where the two methods may round differently
    areas = np.array([_clip_area(box_corners(*ego), box_corners(*o)) for o in others])
    decided = (areas > 1e-6) | (areas == 0)
    assert np.array_equal(got[decided], ref[decided])
    assert 40 < got.sum() < 360  # a mix of hits and misses


def test_corner_cases() -> None:
    ego = (0.0, 0.0, 0.0, 2.0, 1.0)
    # bounding circles overlap but a 45-degree box sits just off the ego's corner
    assert not obb_overlap(ego, np.array([[3.0, 1.5, 45.0, 1.0, 1.0]]))[0]  # |1.0|+|0.5| > sqrt(2)
    assert obb_overlap(ego, np.array([[2.8, 1.5, 45.0, 1.0, 1.0]]))[0]  # |0.8|+|0.5| < sqrt(2)
    # touching edge to edge is not an overlap; 1 cm into it is
    assert not obb_overlap(ego, np.array([[4.0, 0.0, 0.0, 2.0, 1.0]]))[0]
    assert obb_overlap(ego, np.array([[3.99, 0.0, 180.0, 2.0, 1.0]]))[0]
    assert obb_overlap(ego, np.zeros((0, 5))).shape == (0,)


def test_overlapping_actors_and_helpers() -> None:
    ego = ActorBox(1, "ego", 0, 0, 90, 2.4, 1.0, 0)
    near = ActorBox(2, "vehicle", 0, 4.5, 90, 2.4, 1.0, 0)  # nose to tail, 0.3 m overlap along y
    far = ActorBox(3, "pedestrian", 5, 0, 0, 0.3, 0.3, 0)
    assert [a.id for a in overlapping_actors(ego, [near, far])] == [2]
    assert segments_intersect((0, 0), (2, 2), (0, 2), (2, 0))
    assert not segments_intersect((0, 0), (1, 1), (2, 2.1), (3, 3))
    assert segments_intersect((0, 0), (1, 0), (1, 0), (1, 5))  # touching end point
    assert point_in_box(1.5, 0.5, 0, 0, 90, 2, 1.2) is False  # 1.5 m across a 1.2 m half width
    assert point_in_box(0.5, 1.9, 0, 0, 90, 2, 1.2) is True  # 1.9 m along a 2 m half length
