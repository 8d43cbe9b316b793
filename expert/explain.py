"""Why a driver loses 2.x MinimumSpeed checkpoints: its speed against the background's, by hazard.

The leaderboard's ``MinimumSpeedRouteTest`` splits a route into four checkpoints and compares, per
tick, the ego's speed with the mean speed of the background vehicles; a checkpoint whose ego mean is
below the background mean is an infraction (x ``1 - 0.3 (1 - pct)``). ``MinSpeedExplainer`` is a
``leaderboard_eval.runner`` step hook that accumulates exactly the ticks the criterion counts and splits
them by the hazard that set the driver's target (``driver.debug["kind"]``, e.g. the expert's
``vehicle``, ``conflict_vehicle``, ``red_light``):

- *deficit* (m): the sum of ``(background - ego speed) x dt`` over the hazard's ticks. A checkpoint
  fails exactly when its total deficit is positive, so the hazards with the largest deficits are the
  ones that cost it;
- *slow* (s): time spent below ``SLOW_SPEED`` under the hazard;
- *DS cost*: how many DS points the route would gain if the ego had kept the background's speed
  during the hazard's ticks (its deficit removed, the checkpoints rescored with the route's other
  infractions unchanged). An upper bound on what handling that hazard better could buy.

``python -m expert.evaluate --explain`` writes ``explain.json`` and prints the totals over the failed
checkpoints.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

SLOW_SPEED = 3.0  # m/s: below this the ego counts as held up

# What the expert's hazard kinds (ExpertDriver.debug["kind"]) mean, for the printed table.
KIND_MEANING = {
    "vehicle": "queued behind or following a vehicle in the lane",
    "conflict_vehicle": "yielding to a vehicle forecast to cross its path",
    "red_light": "first in line at a red light",
    "yellow_light": "stopping for a yellow light",
    "stop_sign": "stopping at a stop sign",
    "curve": "slowed for a curve or turn",
    "junction": "junction speed",
    "cruise": "at the speed limit, or accelerating towards it",
    "pedestrian": "a pedestrian in the path",
    "conflict_pedestrian": "yielding to a pedestrian forecast to cross",
    "pedestrian_contact": "holding still: a walker touches the car",
    "vehicle_contact": "holding still: a car touches the car",
    "start_guard": "not starting off: a car sweeps past the front",
    "static": "a static obstacle in the path",
    "route_end": "end of the route",
}


@dataclass
class CheckpointTally:
    """The ticks of one MinimumSpeed checkpoint (sums over ticks, speeds in m/s, dt in s)."""

    ticks: int = 0
    ego: float = 0.0  # sum of the ego's |speed|
    background: float = 0.0  # sum of the mean background speed
    deficit: Counter = field(default_factory=Counter)  # kind -> m
    slow: Counter = field(default_factory=Counter)  # kind -> s

    def percentage(self, extra_ego: float = 0.0) -> float:
        """The criterion's value: ego mean / background mean, in percent (100 when nothing counted);
        ``extra_ego`` is added to the ego's speed sum (what-if rescoring)."""
        return round((self.ego + extra_ego) / self.background * 100.0, 2) if self.background else 100.0


class MinSpeedExplainer:
    """``on_step`` hook for ``leaderboard_eval.runner.run_routes`` / ``run_episode`` (see the module)."""

    def __init__(self, dt: float = 0.05) -> None:
        self.dt = dt
        self._routes: dict[str, list[CheckpointTally]] = {}
        self._monitors: dict[str, Any] = {}

    def __call__(self, scene: Any, driver: Any, control: Any, tick: Any, monitor: Any, new_events: Any) -> None:
        sample = monitor.min_speed_sample
        if sample is None:
            return  # 1.0: no such criterion
        index, background = sample
        if math.isnan(background):
            return  # the criterion does not count this tick either
        route_id = monitor.route_id
        tallies = self._routes.get(route_id)
        if tallies is None:
            tallies = self._routes[route_id] = []
            self._monitors[route_id] = monitor
        while len(tallies) <= index:
            tallies.append(CheckpointTally())
        t = tallies[index]
        ego = abs(float(tick.ego.speed))
        kind = str((getattr(driver, "debug", None) or {}).get("kind") or "unknown")
        t.ticks += 1
        t.ego += ego
        t.background += background
        t.deficit[kind] += (background - ego) * self.dt
        if ego < SLOW_SPEED:
            t.slow[kind] += self.dt

    def rows(self) -> list[dict[str, Any]]:
        """Per route: every checkpoint with its seconds, mean speeds, percentage, the value the criterion
        scored (None: not scored, e.g. a route that ended early) and the deficit / slow time by hazard;
        the route's DS and the DS cost of each hazard (see the module)."""
        out = []
        for route_id, tallies in self._routes.items():
            monitor = self._monitors[route_id]
            scored = monitor.min_speed_checkpoints
            cps = []
            for i, t in enumerate(tallies):
                cps.append({
                    "index": i, "seconds": round(t.ticks * self.dt, 2),
                    "ego_speed": round(t.ego / t.ticks, 3), "background_speed": round(t.background / t.ticks, 3),
                    "percentage": t.percentage(), "scored": scored[i] if i < len(scored) else None,
                    "deficit_m": {k: round(v, 2) for k, v in t.deficit.most_common()},
                    "slow_s": {k: round(v, 2) for k, v in t.slow.most_common()},
                })
            ds, costs = self._ds_costs(monitor, tallies, scored)
            out.append({"route_id": route_id, "driving_score": round(ds, 3), "ds_cost": costs, "checkpoints": cps})
        return out

    def _ds_costs(self, monitor: Any, tallies: list[CheckpointTally], scored: list[float]
                  ) -> tuple[float, dict[str, float]]:
        """The route's DS and, per hazard, the DS gained if its deficit were removed."""
        from driving.criteria.events import MIN_SPEED, InfractionEvent
        from driving.scoring import driving_score, infraction_penalty

        others = [e for e in monitor.events if e.kind != MIN_SPEED]
        rc = monitor.route_completion

        def score(values: list[float]) -> float:
            events = others + [InfractionEvent(MIN_SPEED, 0, 0.0, 0.0, 0.0, "", value=v) for v in values if v < 100.0]
            return driving_score(rc, infraction_penalty(events, monitor.version))

        actual = score(scored)
        kinds = {k for t in tallies[:len(scored)] for k, v in t.deficit.items() if v > 0.0}
        costs = {}
        for kind in kinds:
            # the deficit (m) back as speed summed over ticks, i.e. / dt
            values = [t.percentage(max(t.deficit.get(kind, 0.0), 0.0) / self.dt) for t in tallies[:len(scored)]]
            costs[kind] = round(score(values) - actual, 3)
        return actual, dict(sorted(costs.items(), key=lambda kv: -kv[1]))


def failed_totals(rows: list[dict[str, Any]]) -> tuple[int, int, dict[str, tuple[float, float, float]]]:
    """Over the failed checkpoints of ``rows``: (failed, scored, {kind: (slow s, positive deficit m,
    mean DS cost over the routes)}), kinds by deficit, largest first."""
    slow: Counter = Counter()
    deficit: Counter = Counter()
    cost: Counter = Counter()
    failed = scored = 0
    for row in rows:
        cost.update(row.get("ds_cost", {}))
        for cp in row["checkpoints"]:
            if cp["scored"] is None:
                continue
            scored += 1
            if cp["scored"] >= 100.0:
                continue
            failed += 1
            slow.update(cp["slow_s"])
            for kind, metres in cp["deficit_m"].items():
                deficit[kind] += max(metres, 0.0)
    kinds = sorted(set(slow) | set(deficit), key=lambda k: -deficit[k])
    n = max(len(rows), 1)
    return failed, scored, {k: (round(slow[k], 1), round(deficit[k], 1), round(cost[k] / n, 2)) for k in kinds}


def print_totals(rows: list[dict[str, Any]], console: Any = None) -> None:
    """A table of ``failed_totals`` (rich)."""
    from rich.console import Console
    from rich.table import Table

    failed, scored, totals = failed_totals(rows)
    table = Table(title=f"Failed MinimumSpeed checkpoints: {failed} of {scored}, by the hazard that held the car up")
    table.add_column("hazard")
    table.add_column("below 3 m/s (s)", justify="right")
    table.add_column("speed deficit (m)", justify="right")
    table.add_column("DS cost", justify="right")
    table.add_column("meaning")
    for kind, (slow_s, metres, points) in totals.items():
        if slow_s == 0.0 and metres == 0.0:
            continue
        table.add_row(kind, f"{slow_s:.1f}", f"{metres:.1f}", f"{points:.2f}", KIND_MEANING.get(kind, ""))
    (console or Console()).print(table)
