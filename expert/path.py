"""The route ahead as arrays in the ego frame: arc length, heading, curvature, junction spans.

Built from ``Scene.route`` alone (ego-frame points about 1 m apart, ``distance`` along the route from
the ego centre's projection), so the expert stays a pure function of the Scene.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np

from driving.scene import Scene

JUNCTION_OPTIONS = ("LEFT", "RIGHT", "STRAIGHT")  # the planner labels junction connectors with these
MIN_STEP = 0.05  # m, a route point closer than this to the previous one is a repeat
MAX_HOP = 1.2  # m, a step this short that the next step reverses (> 120 deg) is a map hop, dropped


@dataclass(frozen=True)
class JunctionSpan:
    start: float  # m along the route (ego-centre distance) where the connector starts
    end: float  # m where it ends
    option: str  # LEFT | RIGHT | STRAIGHT


class RoutePath:
    """``scene.route`` as arrays: ``xy`` (N, 2) ego frame, ``s`` (N,) metres, ``heading`` (N,) radians."""

    def __init__(self, scene: Scene, horizon: float = 100.0) -> None:
        raw = [p for p in scene.route if p.distance <= horizon]
        kept: list[tuple[float, float, float]] = []
        self.options: list[str] = []
        for i, p in enumerate(raw):
            if kept:
                ax, ay = p.ego_x - kept[-1][0], p.ego_y - kept[-1][1]
                step = math.hypot(ax, ay)
                if step < MIN_STEP:
                    continue  # a repeated point
                # junction connectors may start a little behind the end of the lane before them, and
                # lanes a little behind the connector's end (hops of ~0.7 m at dead-end U-turns): a short
                # step whose next step turns back is such a hop
                if i + 1 < len(raw) and step < MAX_HOP:
                    bx, by = raw[i + 1].ego_x - p.ego_x, raw[i + 1].ego_y - p.ego_y
                    if ax * bx + ay * by < -0.5 * step * math.hypot(bx, by):
                        continue
            kept.append((p.ego_x, p.ego_y, p.distance))
            self.options.append(p.road_option)
        if not kept:
            kept, self.options = [(0.0, 0.0, 0.0)], ["VOID"]
        arr = np.asarray(kept, dtype=float)
        self.xy = arr[:, :2]
        self.s = arr[:, 2]
        n = len(self.s)
        if n >= 2:
            step = np.diff(self.xy, axis=0)
            seg_heading = np.arctan2(step[:, 1], step[:, 0])
            self.heading = np.concatenate([seg_heading, seg_heading[-1:]])
        else:
            self.heading = np.zeros(1)
        self.n = n

        # heading at segment midpoints, unwrapped: heading_at interpolates between them
        if n >= 2:
            self._s_mid = 0.5 * (self.s[:-1] + self.s[1:])
            self._psi_mid = np.unwrap(self.heading[:-1])
        else:
            self._s_mid, self._psi_mid = np.zeros(1), np.zeros(1)

    def shifted(self, offset: float) -> RoutePath:
        """The same route moved ``offset`` metres sideways (positive = to its right), e.g. to pass a
        walker at the kerb with room to spare; arc lengths and labels are kept."""
        out = copy.copy(self)
        normal = np.stack([-np.sin(self.heading), np.cos(self.heading)], axis=1)
        out.xy = self.xy + offset * normal
        return out

    @property
    def length(self) -> float:
        return float(self.s[-1])

    # ------------------------------------------------------------------ look-ups
    def point_at(self, dist: float) -> tuple[float, float]:
        """Ego-frame point at ``dist`` metres along the route (clamped to the known part)."""
        if self.n == 1:
            return float(self.xy[0, 0]), float(self.xy[0, 1])
        i = int(np.clip(np.searchsorted(self.s, dist) - 1, 0, self.n - 2))
        ds = self.s[i + 1] - self.s[i]
        t = 0.0 if ds <= 1e-9 else min(max((dist - self.s[i]) / ds, 0.0), 1.0)
        p = self.xy[i] + t * (self.xy[i + 1] - self.xy[i])
        return float(p[0]), float(p[1])

    def point_beyond(self, radius: float) -> tuple[float, float]:
        """The first route point at least ``radius`` metres from the ego's centre (else the last)."""
        far = np.flatnonzero(np.hypot(self.xy[:, 0], self.xy[:, 1]) >= radius)
        x, y = self.xy[int(far[0]) if far.size else self.n - 1]
        return float(x), float(y)

    def heading_at(self, dist: float) -> float:
        """Route heading (rad, ego frame, positive = right) at ``dist`` metres along it."""
        return float(np.interp(dist, self._s_mid, self._psi_mid))

    def curvature_at(self, dist: float, window: float) -> float:
        """Signed curvature (1/m, positive = turning right) over ``window`` metres centred on ``dist``."""
        lo = max(dist - window / 2.0, float(self._s_mid[0]))
        hi = min(dist + window / 2.0, float(self._s_mid[-1]))
        if hi - lo < 0.5:
            return 0.0
        return (self.heading_at(hi) - self.heading_at(lo)) / (hi - lo)

    def curvature(self, window: float) -> np.ndarray:
        """|d heading / ds| (1/m) at every point, measured over ``window`` metres centred on it."""
        if self.n < 3:
            return np.zeros(self.n)
        unwrapped = np.unwrap(self.heading[:-1])
        unwrapped = np.concatenate([unwrapped, unwrapped[-1:]])
        lo = np.searchsorted(self.s, self.s - window / 2.0)
        hi = np.minimum(np.searchsorted(self.s, self.s + window / 2.0, side="right") - 1, self.n - 2)
        lo = np.minimum(lo, hi)
        arc = self.s[hi] - self.s[lo]
        turn = np.abs(unwrapped[hi] - unwrapped[lo])
        return np.where(arc > 0.5, turn / np.maximum(arc, 1e-6), 0.0)

    def junctions(self) -> list[JunctionSpan]:
        """Junction connectors along the route ahead, in order."""
        spans: list[JunctionSpan] = []
        start = None
        for i, opt in enumerate(self.options):
            inside = opt in JUNCTION_OPTIONS
            if inside and start is None:
                start = i
            if start is not None and (not inside or i == self.n - 1):
                end = i if inside else i - 1
                spans.append(JunctionSpan(float(self.s[start]), float(self.s[end]), self.options[start]))
                start = None
        return spans

    def project(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Project ego-frame points onto the route polyline.

        Returns (arc length along the route, signed lateral offset (positive = right of the route),
        route heading there in radians) for each point.
        """
        x = np.atleast_1d(np.asarray(x, dtype=float))
        y = np.atleast_1d(np.asarray(y, dtype=float))
        if self.n < 2:
            return np.full(x.shape, self.s[0]), np.hypot(x - self.xy[0, 0], y - self.xy[0, 1]), \
                np.full(x.shape, self.heading[0])
        p0 = self.xy[:-1]
        d = self.xy[1:] - p0
        seg_len = np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-9)
        u = d / seg_len[:, None]
        rx = x[:, None] - p0[None, :, 0]
        ry = y[:, None] - p0[None, :, 1]
        t = np.clip(rx * u[None, :, 0] + ry * u[None, :, 1], 0.0, seg_len[None, :])
        ex = rx - t * u[None, :, 0]
        ey = ry - t * u[None, :, 1]
        dist2 = ex * ex + ey * ey
        k = np.argmin(dist2, axis=1)
        rows = np.arange(len(x))
        along = self.s[k] + t[rows, k]
        # left-handed frame: right of a direction (ux, uy) is (-uy, ux)
        lateral = -ex[rows, k] * u[k, 1] + ey[rows, k] * u[k, 0]
        # a point beyond either end: its offset along the end direction is not lateral
        lateral = np.where(dist2[rows, k] > lateral * lateral + 1e-6,
                           np.where(lateral >= 0.0, 1.0, -1.0) * np.sqrt(dist2[rows, k]), lateral)
        return along, lateral, self.heading[k]


def wrap_rad(angle: np.ndarray | float) -> np.ndarray | float:
    """Wrap radians to [-pi, pi)."""
    return (np.asarray(angle) + math.pi) % (2.0 * math.pi) - math.pi
