"""Forecasts in the ego frame and the oriented-box test between them.

- The ego: a kinematic bicycle (centre reference, like the embedded world's ego) steered by pure
  pursuit at the expert's own look-ahead along the route, under a speed plan ("proceed": accelerate
  towards a cruise speed; "brake": stop now), stopping at a given arc length at the latest.
- Vehicles: the same bicycle model with the front wheels straight (the Scene gives no yaw rate) at
  constant speed; pedestrians: constant velocity along their heading.
- Boxes are widened by safety margins and stretched along the actor's velocity by ``speed x time
  margin`` both ways, which covers a timing error of that many seconds. Overlap is
  ``driving.geometry.obb_overlap`` (separating axes), one ego box against all actors per step.

Frames: ego frame of the Scene (x forward, y right, left-handed like CARLA); yaw in radians inside
this module, degrees in the (x, y, yaw_deg, half_length, half_width) boxes ``obb_overlap`` takes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from driving.geometry import obb_overlap
from expert.path import RoutePath

FAR = 1.0e6  # m, where boxes of actors past their own horizon are parked


def bicycle_step(x: np.ndarray, y: np.ndarray, yaw: np.ndarray, v: np.ndarray, wheel: np.ndarray,
                 accel: np.ndarray, dt: float, wheelbase: np.ndarray | float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One step of a centre-referenced kinematic bicycle (vectorised; ``wheel`` front-wheel angle, rad)."""
    v1 = np.maximum(v + accel * dt, 0.0)
    vm = 0.5 * (v + v1)
    beta = np.arctan(0.5 * np.tan(wheel))
    heading = yaw + beta
    x = x + vm * np.cos(heading) * dt
    y = y + vm * np.sin(heading) * dt
    yaw = yaw + vm * 2.0 * np.sin(beta) / wheelbase * dt
    return x, y, yaw, v1


@dataclass
class EgoForecast:
    """The ego's forecast: states at steps 0..T (``x, y, yaw`` ego frame, ``v``) and travelled ``s``."""

    x: np.ndarray
    y: np.ndarray
    yaw: np.ndarray
    v: np.ndarray
    s: np.ndarray

    def boxes(self, half_length: float, half_width: float, front_margin: float, per_speed: float,
              width_margin: float, width_per_speed: float = 0.0) -> np.ndarray:
        """(T+1, 5) boxes, lengthened at the front only (by ``front_margin + per_speed x v``) and
        widened by ``width_margin + width_per_speed x v``."""
        extra = front_margin + per_speed * self.v
        shift = 0.5 * extra
        out = np.empty((len(self.x), 5))
        out[:, 0] = self.x + shift * np.cos(self.yaw)
        out[:, 1] = self.y + shift * np.sin(self.yaw)
        out[:, 2] = np.degrees(self.yaw)
        out[:, 3] = half_length + shift
        out[:, 4] = half_width + width_margin + width_per_speed * self.v
        return out


CurvatureLaw = Callable[[float, float, float, float, float], float]  # (x, y, yaw, s, v) -> 1/m


def ego_rollout(path: RoutePath, speed: float, accel: float, limits: np.ndarray | None, stop_at: float,
                steps: int, dt: float, wheelbase: float, max_wheel: float, law: CurvatureLaw) -> EgoForecast:
    """Roll the ego's bicycle out along ``path``, steered by ``law`` (the expert's own lateral law).

    ``accel`` >= 0: speed rises at ``accel`` up to ``limits`` (the allowed speed at each path point,
    braking already planned in); ``accel`` < 0: it brakes at that rate. Travel never passes
    ``stop_at`` metres. ``s`` is the distance travelled, taken as the arc length along the path.
    """
    xs, ys, yaws, vs, ss = [0.0], [0.0], [0.0], [max(speed, 0.0)], [0.0]
    x = y = yaw = s = 0.0
    v = max(speed, 0.0)
    max_beta = math.atan(0.5 * math.tan(max_wheel))
    for _ in range(steps):
        if accel >= 0.0 and limits is not None:
            v_next = min(v + accel * dt, float(np.interp(s + v * dt, path.s, limits)))
        else:
            v_next = max(0.0, v + accel * dt)
        # never beyond stop_at: the speed that still stops there at the step's deceleration
        room = stop_at - s
        if room <= 0.0:
            v_next = 0.0
        elif 0.5 * (v + v_next) * dt > room:
            v_next = max(0.0, 2.0 * room / dt - v)
        kappa = law(x, y, yaw, s, v)
        # centre-referenced bicycle: slip angle from curvature, limited by the steering lock
        beta = max(-max_beta, min(max_beta, math.asin(max(-1.0, min(1.0, 0.5 * kappa * wheelbase)))))
        vm = 0.5 * (v + v_next)
        x += vm * math.cos(yaw + beta) * dt
        y += vm * math.sin(yaw + beta) * dt
        yaw += vm * 2.0 * math.sin(beta) / wheelbase * dt
        s += vm * dt
        v = v_next
        xs.append(x)
        ys.append(y)
        yaws.append(yaw)
        vs.append(v)
        ss.append(s)
    return EgoForecast(np.array(xs), np.array(ys), np.array(yaws), np.array(vs), np.array(ss))


@dataclass
class ActorForecast:
    """Boxes of the forecast actors: ``boxes[k]`` is (N, 5) at step k; ``ids`` / ``kinds`` per column."""

    ids: list[int]
    kinds: list[str]
    boxes: np.ndarray  # (T+1, N, 5), with the safety margins
    now: np.ndarray  # (N, 5), the boxes as they are (no margins)


def forecast_actors(ids: list[int], kinds: list[str], state: np.ndarray, steps: np.ndarray, dt: float,
                    width_margin: np.ndarray, time_margin: np.ndarray, wheelbase: np.ndarray,
                    extra_length: np.ndarray | float = 0.0, wheel: np.ndarray | None = None) -> ActorForecast:
    """Forecast actors from ``state`` (N, 6): ego-frame x, y, yaw (rad), speed, half_length, half_width.

    ``steps[i]``: how many steps actor i is forecast (later its box is parked far away); widths grow
    by ``width_margin`` and lengths by ``speed x time_margin`` (both (N,)); ``extra_length`` is the
    margin already added to the half-lengths in ``state`` (taken off for ``now``). Every actor keeps its
    speed; ``wheel`` (N,) holds its front-wheel angle (rad; straight, 0, if None).
    """
    n = state.shape[0]
    total = int(steps.max()) if n else 0
    boxes = np.empty((total + 1, n, 5))
    x, y, yaw, v = state[:, 0].copy(), state[:, 1].copy(), state[:, 2].copy(), state[:, 3].copy()
    zero = np.zeros(n)
    wheel = zero if wheel is None else wheel
    moving = np.abs(v)
    raw_length = state[:, 4] - extra_length
    half_length = state[:, 4] + moving * time_margin
    half_width = state[:, 5] + width_margin
    for k in range(total + 1):
        if k:
            x, y, yaw, v = bicycle_step(x, y, yaw, v, wheel, zero, dt, wheelbase)
        gone = steps < k
        boxes[k, :, 0] = np.where(gone, FAR, x)
        boxes[k, :, 1] = np.where(gone, FAR, y)
        boxes[k, :, 2] = np.degrees(yaw)
        boxes[k, :, 3] = half_length
        boxes[k, :, 4] = half_width
    now = np.stack([state[:, 0], state[:, 1], np.degrees(state[:, 2]), raw_length, state[:, 5]], axis=1)
    return ActorForecast(ids, kinds, boxes, now)


@dataclass(frozen=True)
class Conflict:
    step: int  # first forecast step with an overlap
    time: float  # s
    actor: int  # column in the ActorForecast
    s_before: float  # m the ego travels up to the last step without overlap


def first_conflict(ego_boxes: np.ndarray, ego_s: np.ndarray, actors: ActorForecast, dt: float,
                   active: np.ndarray | None = None, ego_now: np.ndarray | None = None) -> Conflict | None:
    """The first step at which the ego's box overlaps an actor's (None if never); only the columns
    where ``active`` is True count (all if None). ``ego_now``: the ego's box as it is (no margins)."""
    if not actors.ids:
        return None
    steps = min(len(ego_boxes), actors.boxes.shape[0])
    # an actor overlapping the ego's very box already, beside or behind its front half-metre, is one
    # moving on takes the ego away from (a car that scraped its side): no conflict left to avoid
    now = np.zeros(len(actors.ids), dtype=bool)
    if ego_now is not None:
        now = obb_overlap(ego_now, actors.now) & (actors.now[:, 0] < ego_now[3] - 0.5)
        # walkers excepted: moving off with one against the car is a collision (contact_cap holds)
        now &= np.array([k != "pedestrian" for k in actors.kinds])
    for k in range(steps):
        hits = obb_overlap(ego_boxes[k], actors.boxes[k]) & ~now
        if active is not None:
            hits &= active
        if hits.any():
            j = int(np.flatnonzero(hits)[0])
            return Conflict(k, k * dt, j, float(ego_s[max(k - 1, 0)]))
    return None


def overlaps(ego_boxes: np.ndarray, actors: ActorForecast, column: int) -> bool:
    """Whether actor ``column`` overlaps the ego's box at the same step, at any step."""
    steps = min(len(ego_boxes), actors.boxes.shape[0])
    return any(bool(obb_overlap(ego_boxes[k], actors.boxes[k, column:column + 1])[0]) for k in range(steps))
