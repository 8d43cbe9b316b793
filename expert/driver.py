"""``ExpertDriver``: the privileged rule-based expert (labels, datasets, a strong baseline).

Per Scene (nothing is carried between calls, so it can label scenes another driver produced):

1. lateral: the angle to the point at the shared aim distance on the arc it plans along the route
   (``Action.steering_deg``, see ``expert.lateral``);
2. longitudinal: speed caps from the lane's limit, curves, junctions, traffic lights, stop signs,
   actors in the path (IDM) and forecast conflicts with crossing actors; the target is the lowest
   cap and ``debug`` names it;
3. the label is ``SpeedLevels.label(target, scene)``, the one mapping shared with the learner;
4. ``run_step`` (inherited) drives the target with the shared ``ActionController``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from driving.actions import SPEED_LEVELS_DEFAULT, Action, ActionDriver, SpeedLevels
from driving.scene import Scene
from driving.types import Route
from expert.config import ExpertConfig
from expert.hazards import (
    ActorTable,
    conflict_cap,
    contact_cap,
    followers,
    nudge_offset,
    path_caps,
    start_guard_cap,
)
from expert.lateral import steering_angle
from expert.longitudinal import (
    SpeedCap,
    cruise_speed,
    curve_cap,
    junction_cap,
    light_cap,
    limit_profile,
    stop_sign_cap,
)
from expert.path import RoutePath

log = logging.getLogger(__name__)

# caps that end in a standstill at a known distance: the forecast never goes beyond them
_STOPPING = ("red_light", "yellow_light", "stop_sign")


class ExpertDriver(ActionDriver):
    """The privileged expert (see the module docstring). A ``driving.drivers.Driver``."""

    def __init__(self, config: ExpertConfig | Mapping[str, Any] | None = None, dt: float = 0.05,
                 levels: SpeedLevels = SPEED_LEVELS_DEFAULT, **overrides: Any) -> None:
        """``config`` as a dataclass or a mapping (e.g. from Hydra); keyword overrides win."""
        super().__init__(dt=dt)
        if config is None or isinstance(config, Mapping):
            config = ExpertConfig(**{**dict(config or {}), **overrides})
        elif overrides:
            config = dataclasses.replace(config, **overrides)
        self.config = config
        self.levels = levels
        self.steering = self.controller.steering  # the aim distance the shared controller assumes
        self.route: Route | None = None
        self.debug: dict[str, Any] = {}

    def reset(self, route: Route) -> None:
        super().reset(route)
        self.route = route
        self.debug = {}
        self._dense = np.array([(w.x, w.y) for w in route.dense], dtype=float).reshape(-1, 2)

    def _trail(self, scene: Scene) -> np.ndarray | None:
        """The route driven just before the ego's projection (ego frame, oldest first), from ``reset``'s
        route: the dense point nearest the projection that heads the way the route does there."""
        dense = getattr(self, "_dense", None)
        if dense is None or len(dense) < 2 or len(scene.route) < 2:
            return None
        p0, p1 = scene.route[0], scene.route[1]
        d = np.hypot(dense[:, 0] - p0.x, dense[:, 1] - p0.y)
        near = np.flatnonzero(d < 1.5)
        if near.size == 0:
            return None
        step = np.diff(dense, axis=0, append=dense[-1:] + (dense[-1:] - dense[-2:-1]))
        aligned = near[(step[near, 0] * (p1.x - p0.x) + step[near, 1] * (p1.y - p0.y)) > 0.0]
        if aligned.size == 0:
            return None
        i = int(aligned[np.argmin(d[aligned])])
        first = max(0, i - int(self.config.trail_length))
        pts = np.vstack([dense[first:i + 1], [[p0.x, p0.y]]])
        c, s = math.cos(math.radians(scene.ego.yaw)), math.sin(math.radians(scene.ego.yaw))
        dx, dy = pts[:, 0] - scene.ego.x, pts[:, 1] - scene.ego.y
        return np.stack([c * dx + s * dy, -s * dx + c * dy], axis=1)

    # ------------------------------------------------------------------ the decision
    def act(self, scene: Scene) -> Action:
        cfg = self.config
        path = RoutePath(scene)
        if path.n < 2 or path.length < 1.0:
            self.debug = {"kind": "route_end", "actor_id": None, "distance": 0.0, "target_speed": 0.0}
            return Action("STOP", 0.0, 0.0)
        speed = float(scene.ego.speed)
        table = ActorTable.of(scene, path, cfg.forecast_radius)
        offset = nudge_offset(scene, table, cfg)
        if offset:
            path = path.shifted(offset)
            table = ActorTable.of(scene, path, cfg.forecast_radius)
        steering = steering_angle(path, speed, self.steering.aim_distance(speed), cfg)

        caps: list[SpeedCap] = [SpeedCap(cruise_speed(scene, cfg), "cruise")]
        for cap in (curve_cap(path, cfg), junction_cap(path, scene, cfg), light_cap(scene, cfg),
                    stop_sign_cap(scene, cfg)):
            if cap is not None:
                caps.append(cap)
        actor_caps, leaders = path_caps(scene, table, path, cfg)
        caps += actor_caps
        for guard in (contact_cap(scene, cfg), start_guard_cap(scene, cfg)):
            if guard is not None:
                caps.append(guard)
        stop_at = self._stop_at(caps, scene)
        limits = limit_profile(path, scene, cfg)
        ignore = leaders | followers(table, self._trail(scene), cfg)
        conflict = conflict_cap(scene, table, path, cfg, ignore, limits, stop_at, self.steering.aim_distance)
        if conflict is not None:
            caps.append(conflict)
        best = min(caps, key=lambda c: c.speed)
        target = max(0.0, best.speed)
        level = self.levels.label(target, scene)
        self.debug = {"kind": best.kind, "actor_id": best.actor_id, "distance": best.distance,
                      "target_speed": target, "offset": offset, "caps": {c.kind: round(c.speed, 2) for c in sorted(
                          caps, key=lambda c: -c.speed)}}
        return Action(level, steering, target)

    def _stop_at(self, caps: list[SpeedCap], scene: Scene) -> float:
        """Travel (m) after which the ego will be standing anyway: a red light, a stop sign, a leader."""
        cfg = self.config
        stop = math.inf
        for cap in caps:
            if cap.distance is None:
                continue
            if cap.kind in _STOPPING:
                s0 = cfg.stop_sign_s0 if cap.kind == "stop_sign" else cfg.light_s0
                stop = min(stop, max(cap.distance - s0, 0.0))
            elif cap.kind == "vehicle" and cap.speed < 0.5:
                stop = min(stop, max(cap.distance - cfg.follow_s0, 0.0))
        return stop
