"""Criteria that follow the ego along the dense route: RouteCompletionTest, InRouteTest,
MinimumSpeedRouteTest, the route timeout and ActorBlockedTest.

Each keeps its own route index and look-ahead window, as scenario_runner's do: a route point is
"passed" when ``(ego - point) . point_forward > 0``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from driving.criteria.events import (
    BLOCKED,
    MIN_SPEED,
    ROUTE_DEVIATION,
    ROUTE_TIMEOUT,
    CriteriaParams,
    InfractionEvent,
    location_text,
)
from driving.types import Route, WorldTick


class RouteGeometry:
    """The dense route as arrays: positions, unit forward vectors, accumulated metres (3-D like
    the leaderboard's ``location.distance``)."""

    def __init__(self, route: Route) -> None:
        if len(route.dense) < 2:
            raise ValueError(f"route {route.id!r} has {len(route.dense)} dense waypoints; plan it first (>= 2 needed)")
        self.xyz = np.array([(w.x, w.y, w.z) for w in route.dense], dtype=float)
        yaw = np.radians([w.yaw for w in route.dense])
        self.forward = np.stack([np.cos(yaw), np.sin(yaw)], axis=1)
        steps = np.linalg.norm(np.diff(self.xyz, axis=0), axis=1)
        self.accum = np.concatenate([[0.0], np.cumsum(steps)])
        self.length = float(self.accum[-1])
        self.n = len(route.dense)
        # plain-float copies for the per-tick scalar tests (numpy scalar indexing costs ~10x more)
        self._points = [(float(p[0]), float(p[1]), float(f[0]), float(f[1])) for p, f in zip(self.xyz, self.forward, strict=True)]

    def passed(self, index: int, x: float, y: float) -> bool:
        px, py, fx, fy = self._points[index]
        return (x - px) * fx + (y - py) * fy > 0

    def advance(self, index: int, x: float, y: float, window: int, start_offset: int = 0) -> int:
        """The last index in ``index+start_offset .. index+window`` the ego has passed (else ``index``)."""
        new = index
        for i in range(index + start_offset, min(index + window + 1, self.n)):
            if self.passed(i, x, y):
                new = i
        return new


class RouteCompletionCriterion:
    """RouteCompletionTest: percentage of the route passed; success above 99 % within 10 m of the end."""

    def __init__(self, geometry: RouteGeometry, params: CriteriaParams) -> None:
        self.g = geometry
        self.p = params
        self.index = 0
        self.value = 0.0  # percent
        self.success = False
        # 2.x rounds the percentage to 2 decimals every tick; 1.0 keeps it exact
        self._perc = self.g.accum / self.g.length * 100.0 if self.g.length > 0 else np.zeros(self.g.n)

    def update(self, tick: WorldTick) -> None:
        if self.success:
            return
        x, y = tick.ego.x, tick.ego.y
        self.index = self.g.advance(self.index, x, y, self.p.completion_window)
        value = float(self._perc[self.index]) if self.index > 0 else self.value
        self.value = round(value, 2) if self.p.version != "1.0" else value
        end = self.g.xyz[-1]
        if self.value > self.p.completion_percentage and math.hypot(x - end[0], y - end[1]) < self.p.completion_distance:
            self.success = True
            self.value = 100.0


class InRouteCriterion:
    """InRouteTest: fails when the nearest of the next 6 route points is >= 30 m away, or when more
    than 30 % of the route length was covered while >= 15 m from the route."""

    WINDOW = 5

    def __init__(self, geometry: RouteGeometry, params: CriteriaParams) -> None:
        self.g = geometry
        self.p = params
        self.index = 0
        self.offroad_min = params.offroad_max / 2
        self.out_distance = 0.0
        self.in_safe_route = True
        self.failed = False

    def update(self, tick: WorldTick) -> list[InfractionEvent]:
        if self.failed:
            return []
        x, y = tick.ego.x, tick.ego.y
        end = min(self.index + self.WINDOW + 1, self.g.n)
        d = np.hypot(self.g.xyz[self.index:end, 0] - x, self.g.xyz[self.index:end, 1] - y)
        # ties go to the later point, as the leaderboard's "<=" scan does
        closest = self.index + int(len(d) - 1 - np.argmin(d[::-1]))
        shortest = float(d[closest - self.index])
        off_route = True
        if shortest < self.p.offroad_max:
            off_route = False
            self.in_safe_route = shortest < self.offroad_min
        if closest != self.index:
            new_dist = float(self.g.accum[closest] - self.g.accum[self.index])
            if not self.in_safe_route:
                self.out_distance += new_dist
                if 100 * self.out_distance / self.g.length > self.p.offroad_max_percentage:
                    off_route = True
            self.index = closest
        if not off_route:
            return []
        self.failed = True
        return [InfractionEvent(kind=ROUTE_DEVIATION, frame=tick.frame, time=tick.time, x=x, y=y,
                                message=f"Agent deviated from the route at {location_text(x, y)}")]


class MinimumSpeedCriterion:
    """MinimumSpeedRouteTest (2.x): per quarter of the route, the ego's mean speed as a percentage of
    the mean speed of the background vehicles; a checkpoint below 100 % is an infraction."""

    WINDOW = 2

    def __init__(self, geometry: RouteGeometry, checkpoints: int = 4) -> None:
        self.g = geometry
        self.checkpoint_dist = geometry.length / checkpoints
        self.index = 0
        self.current_dist = 0.0
        self._mean_speed = 0.0
        self._actor_speed = 0.0
        self._points = 0
        self.checkpoint_values: list[float] = []
        self.background_speed = math.nan  # this tick's mean background speed (nan: none counted)

    def update(self, tick: WorldTick, background_speed: float) -> list[InfractionEvent]:
        """``background_speed``: mean |speed| of the background vehicles this tick (nan if none), as
        ``RouteMonitor`` selects them (``CriteriaParams.background_reach``)."""
        x, y = tick.ego.x, tick.ego.y
        self.index = self.g.advance(self.index, x, y, self.WINDOW)
        events: list[InfractionEvent] = []
        if self.g.accum[self.index] - self.current_dist > self.checkpoint_dist:
            events += self._checkpoint(tick)
            self.current_dist = float(self.g.accum[self.index])
        self.background_speed = background_speed
        if not math.isnan(background_speed):
            self._mean_speed += background_speed
            self._actor_speed += abs(tick.ego.speed)
            self._points += 1
        return events

    def finish(self, tick: WorldTick | None) -> list[InfractionEvent]:
        """At the end of the route: routes end near 99 %, so the last quarter is closed above 95 %."""
        if tick is None or self.g.accum[self.index] / self.g.length <= 0.95:
            return []
        return self._checkpoint(tick)

    def _checkpoint(self, tick: WorldTick) -> list[InfractionEvent]:
        if self._points > 0 and self._mean_speed:
            value = round((self._actor_speed / self._points) / (self._mean_speed / self._points) * 100, 2)
        else:
            value = 100.0
        self._mean_speed = self._actor_speed = 0.0
        self._points = 0
        self.checkpoint_values.append(value)
        if value >= 100:
            return []
        return [InfractionEvent(kind=MIN_SPEED, frame=tick.frame, time=tick.time, x=tick.ego.x, y=tick.ego.y,
                                value=value, message=f"Average speed is {value}% of the surrounding traffic's one")]


class RouteTimeout:
    """The route's time budget. 1.0: ``int(0.8 s/m * length + 5 s)``. 2.x (RouteTimeoutBehavior):
    300 s plus, for every metre of route passed, ``1 / (10 % of the lane's speed limit)`` s."""

    WINDOW = 3

    def __init__(self, geometry: RouteGeometry, version: str, speed_limit: Callable[[float, float], float],
                 fixed_timeout: float | None = None) -> None:
        self.g = geometry
        self.version = version
        self.speed_limit = speed_limit  # m/s at (x, y)
        self.index = 0
        self.fixed = fixed_timeout is not None
        if fixed_timeout is not None:
            self.value = float(fixed_timeout)
        elif version == "1.0":
            self.value = float(int(0.8 * geometry.length + 5.0))
        else:
            self.value = 300.0
        self.timed_out = False

    def update(self, tick: WorldTick) -> list[InfractionEvent]:
        if self.timed_out:
            return []
        if self.version != "1.0" and not self.fixed:
            new = self.g.advance(self.index, tick.ego.x, tick.ego.y, self.WINDOW)
            if new > self.index:
                dist = float(self.g.accum[new] - self.g.accum[self.index])
                limit = self.speed_limit(tick.ego.x, tick.ego.y)
                self.value += dist / (limit * 10 / 100)
                self.index = new
        if tick.time > self.value:
            self.timed_out = True
            return [InfractionEvent(kind=ROUTE_TIMEOUT, frame=tick.frame, time=tick.time, x=tick.ego.x,
                                    y=tick.ego.y, message="Route timeout.")]
        return []


class BlockedCriterion:
    """ActorBlockedTest / ActorSpeedAboveThresholdTest: speed below 0.1 m/s for more than 180 s."""

    def __init__(self, params: CriteriaParams) -> None:
        self.p = params
        self._last_valid: float | None = None
        self.failed = False

    def update(self, tick: WorldTick) -> list[InfractionEvent]:
        if self.failed:
            return []
        # The leaderboard tests "and self._time_last_valid_state" (truthiness): a state recorded at
        # game time 0.0 counts as unset, so a route starting stopped starts the clock a tick later.
        if abs(tick.ego.speed) < self.p.blocked_speed and self._last_valid:
            if tick.time - self._last_valid > self.p.blocked_time:
                self.failed = True
                x, y = tick.ego.x, tick.ego.y
                return [InfractionEvent(kind=BLOCKED, frame=tick.frame, time=tick.time, x=x, y=y,
                                        message=f"Agent got blocked at {location_text(x, y)}")]
        else:
            self._last_valid = tick.time
        return []
