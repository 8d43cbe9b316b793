"""Leaderboard scoring: infraction penalty, driving score, route records and the global record.

Exact to the leaderboard's ``statistics_manager.py``:

- **1.0** (leaderboard-1.0): IP = product of 0.50 pedestrian, 0.60 vehicle, 0.65 layout, 0.70 red
  light, 0.80 stop, and ``1 - pct/100`` for outside route lanes. Status 'Completed' or 'Failed -
  ...'. Global per-km rates are the *sum of per-route rates* ``count / (RC/100 * length_km)``,
  skipping routes with RC == 0; means are not rounded; values formatted ``{:.3f}``.
- **2.0** (leaderboard-2.0 and master): the 1.0 table plus scenario timeout 0.7, yield to emergency
  vehicle 0.7, outside lanes ``1 - pct/100`` and min speed ``1 - 0.3 * (1 - pct/100)`` per failed
  checkpoint. 'Perfect' when completed without infractions. Global rates = total count / total
  km driven (``sum RC/100 * length_km``, at least 0.001); outside_route_lanes is the km driven
  outside (not a rate). Scores rounded to 6 digits, std dev to 3.
- **2.1** (leaderboard-2.1): ``IP = prod(1 - outside_pct/100) * 1 / (1 + sum w)`` with w = 1.0
  pedestrian, 0.7 vehicle, 0.6 layout, 0.4 red light, 0.25 stop, 0.4 scenario timeout, 0.4 yield,
  ``0.4 * (1 - pct/100)`` per min-speed checkpoint. Global statistics as 2.0.

Driving score ``DS = RC * IP`` per route; global averages divide by the number of routes (failed
ones included).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from driving.criteria.events import (
    BLOCKED,
    COLLISION_LAYOUT,
    COLLISION_PEDESTRIAN,
    COLLISION_VEHICLE,
    CRITERIA_ORDER,
    MIN_SPEED,
    OUTSIDE_LANES,
    RED_LIGHT,
    ROUTE_DEVIATION,
    ROUTE_TIMEOUT,
    SCENARIO_TIMEOUT,
    STOP,
    YIELD_EMERGENCY,
    InfractionEvent,
    check_version,
)


@dataclass(frozen=True)
class PenaltyTable:
    """One version's penalties. ``mode`` 'product' multiplies factors; 'sum' is 2.1's 1/(1+sum w)."""

    version: str
    mode: str
    fixed: dict[str, float]  # per event: factor (product) or weight (sum)
    min_speed: float | None  # product: the leaderboard's 0.7 'decreases' value; sum: weight 0.4
    outside_lanes: bool = True


PENALTY_TABLES: dict[str, PenaltyTable] = {
    "1.0": PenaltyTable("1.0", "product", {
        COLLISION_PEDESTRIAN: 0.50, COLLISION_VEHICLE: 0.60, COLLISION_LAYOUT: 0.65,
        RED_LIGHT: 0.70, STOP: 0.80}, None),
    "2.0": PenaltyTable("2.0", "product", {
        COLLISION_PEDESTRIAN: 0.5, COLLISION_VEHICLE: 0.6, COLLISION_LAYOUT: 0.65, RED_LIGHT: 0.7,
        STOP: 0.8, SCENARIO_TIMEOUT: 0.7, YIELD_EMERGENCY: 0.7}, 0.7),
    "2.1": PenaltyTable("2.1", "sum", {
        COLLISION_PEDESTRIAN: 1.0, COLLISION_VEHICLE: 0.7, COLLISION_LAYOUT: 0.6, RED_LIGHT: 0.4,
        STOP: 0.25, SCENARIO_TIMEOUT: 0.4, YIELD_EMERGENCY: 0.4}, 0.4),
}

# results.json infraction keys in the order the leaderboard creates them
INFRACTION_KEYS: dict[str, tuple[str, ...]] = {
    "1.0": (COLLISION_PEDESTRIAN, COLLISION_VEHICLE, COLLISION_LAYOUT, RED_LIGHT, STOP, OUTSIDE_LANES,
            ROUTE_DEVIATION, ROUTE_TIMEOUT, BLOCKED),
    "2.0": (COLLISION_LAYOUT, COLLISION_PEDESTRIAN, COLLISION_VEHICLE, RED_LIGHT, STOP, OUTSIDE_LANES,
            MIN_SPEED, YIELD_EMERGENCY, SCENARIO_TIMEOUT, ROUTE_DEVIATION, BLOCKED, ROUTE_TIMEOUT),
}
INFRACTION_KEYS["2.1"] = INFRACTION_KEYS["2.0"]

FAILURE_MESSAGES = {
    "Simulation": ("Crashed", "Simulation crashed"),
    "Sensors": ("Rejected", "Agent's sensors were invalid"),
    "Agent_init": ("Started", "Agent couldn't be set up"),
    "Agent_runtime": ("Started", "Agent crashed"),
}
ROUND_DIGITS = 3
ROUND_DIGITS_SCORE = 6


def _table(version: str) -> PenaltyTable:
    return PENALTY_TABLES[check_version(version)]


def infraction_penalty(events: Iterable[InfractionEvent], version: str = "2.0") -> float:
    """The route's infraction penalty (IP) from its events, unrounded."""
    table = _table(version)
    keys = INFRACTION_KEYS[table.version]
    product = 1.0
    weight = 0.0
    for e in events:
        if e.kind not in keys:
            continue
        if e.kind == OUTSIDE_LANES:
            product *= 1 - (e.value or 0.0) / 100
        elif e.kind == MIN_SPEED and table.min_speed is not None:
            pct = e.value if e.value is not None else 100.0
            if table.mode == "product":
                product *= 1 - (1 - table.min_speed) * (1 - pct / 100)
            else:
                weight += table.min_speed * (1 - pct / 100)
        elif e.kind in table.fixed:
            if table.mode == "product":
                product *= table.fixed[e.kind]
            else:
                weight += table.fixed[e.kind]
    if table.mode == "sum":
        product *= 1 / (1 + weight)
    return product


def driving_score(route_completion: float, penalty: float) -> float:
    """DS = RC * IP (RC in percent), never negative."""
    return max(route_completion * penalty, 0.0)


@dataclass
class RouteRecord:
    """One route's record, as the leaderboard's RouteRecord (+ the events, which are not written)."""

    route_id: str
    index: int
    status: str
    infractions: dict[str, list[str]]
    scores: dict[str, float]
    meta: dict[str, Any]
    version: str = "2.0"
    events: list[InfractionEvent] = field(default_factory=list)

    @property
    def num_infractions(self) -> int:
        return sum(len(v) for v in self.infractions.values())

    @property
    def route_completion(self) -> float:
        return float(self.scores["score_route"])

    @property
    def infraction_penalty(self) -> float:
        return float(self.scores["score_penalty"])

    @property
    def driving_score(self) -> float:
        return float(self.scores["score_composed"])

    def to_json(self) -> dict[str, Any]:
        """The record exactly as results.json holds it for this version."""
        if self.version == "1.0":
            return {"route_id": self.route_id, "index": self.index, "status": self.status,
                    "infractions": {k: list(v) for k, v in self.infractions.items()},
                    "scores": dict(self.scores), "meta": dict(self.meta)}
        return {"index": self.index, "route_id": self.route_id, "status": self.status,
                "num_infractions": self.num_infractions,
                "infractions": {k: list(v) for k, v in self.infractions.items()},
                "scores": dict(self.scores), "meta": dict(self.meta)}

    @classmethod
    def from_json(cls, data: dict[str, Any], version: str) -> RouteRecord:
        return cls(route_id=data["route_id"], index=int(data["index"]), status=data["status"],
                   infractions={k: list(v) for k, v in data["infractions"].items()},
                   scores=dict(data["scores"]), meta=dict(data["meta"]), version=check_version(version))


def route_record_id(route_id: str, repetition: int, version: str) -> str:
    """'RouteScenario_<id>_rep<r>' (2.x) or 'RouteScenario_<id>' (1.0), as the leaderboard names them."""
    base = f"RouteScenario_{route_id}"
    return base if check_version(version) == "1.0" else f"{base}_rep{repetition}"


def build_route_record(
    route_id: str,
    index: int,
    events: Sequence[InfractionEvent],
    route_completion: float,
    target_reached: bool,
    route_length: float,
    duration_game: float,
    duration_system: float,
    version: str = "2.0",
    failure_message: str = "",
) -> RouteRecord:
    """Score a finished route as ``StatisticsManager.compute_route_statistics`` does.

    ``events`` may include a 'route_timeout' event (message 'Route timeout.'); ``failure_message`` is
    an external failure ('Agent crashed', 'Simulation crashed', ...), overridden like the
    leaderboard does by a timeout, then a route deviation, then being blocked.
    """
    version = check_version(version)
    keys = INFRACTION_KEYS[version]
    infractions: dict[str, list[str]] = {k: [] for k in keys}
    ordered = sorted((e for e in events if e.kind in keys), key=lambda e: CRITERIA_ORDER.get(e.kind, 9))
    failure = failure_message
    for e in ordered:
        infractions[e.kind].append(e.message)
        if e.kind == ROUTE_TIMEOUT:
            failure = "Agent timed out"
        elif e.kind == ROUTE_DEVIATION:
            failure = "Agent deviated from the route"
        elif e.kind == BLOCKED:
            failure = "Agent got blocked"
    if version == "1.0":
        score_route = 100.0 if target_reached else float(route_completion)
    else:
        score_route = 100.0 if target_reached else round(float(route_completion), 2)
        target_reached = score_route >= 100
    penalty = infraction_penalty(ordered, version)
    composed = driving_score(score_route, penalty)
    if version == "1.0":
        scores = {"score_route": score_route, "score_penalty": penalty, "score_composed": composed}
        meta = {"duration_system": duration_system, "duration_game": duration_game, "route_length": route_length}
    else:
        scores = {"score_route": round(score_route, ROUND_DIGITS_SCORE),
                  "score_penalty": round(penalty, ROUND_DIGITS_SCORE),
                  "score_composed": round(composed, ROUND_DIGITS_SCORE)}
        meta = {"route_length": round(route_length, ROUND_DIGITS),
                "duration_game": round(duration_game, ROUND_DIGITS),
                "duration_system": round(duration_system, ROUND_DIGITS)}
    record = RouteRecord(route_id=route_id, index=index, status="", infractions=infractions, scores=scores,
                         meta=meta, version=version, events=list(ordered))
    if target_reached:
        record.status = "Completed" if version == "1.0" or record.num_infractions > 0 else "Perfect"
    else:
        record.status = "Failed" + (f" - {failure}" if failure else "")
    return record


# ----------------------------------------------------------------------------- global record
LABELS: dict[str, list[str]] = {
    "1.0": ["Avg. driving score", "Avg. route completion", "Avg. infraction penalty",
            "Collisions with pedestrians", "Collisions with vehicles", "Collisions with layout",
            "Red lights infractions", "Stop sign infractions", "Off-road infractions", "Route deviations",
            "Route timeouts", "Agent blocked"],
}
LABELS["2.0"] = LABELS["1.0"] + ["Yield emergency vehicles infractions", "Scenario timeouts", "Min speed infractions"]
LABELS["2.1"] = LABELS["2.0"]

_VALUE_KEYS = [COLLISION_PEDESTRIAN, COLLISION_VEHICLE, COLLISION_LAYOUT, RED_LIGHT, STOP, OUTSIDE_LANES,
               ROUTE_DEVIATION, ROUTE_TIMEOUT, BLOCKED, YIELD_EMERGENCY, SCENARIO_TIMEOUT, MIN_SPEED]


def outside_lanes_km(record: RouteRecord) -> float:
    """Km driven outside the route lanes, parsed from the message as the leaderboard does."""
    messages = record.infractions.get(OUTSIDE_LANES) or []
    if not messages:
        return 0.0
    return float(messages[0].split(" ")[8]) / 1000


def global_record(records: Sequence[RouteRecord], version: str = "2.0", total_routes: int | None = None) -> dict:
    """The ``global_record`` dict of results.json (``compute_global_statistics``)."""
    version = check_version(version)
    total = total_routes if total_routes is not None else len(records)
    if version == "1.0":
        return _global_record_1_0(records, total)
    keys = INFRACTION_KEYS[version]
    infractions: dict[str, float] = {k: 0 for k in keys}
    means: dict[str, float] = {"score_composed": 0, "score_route": 0, "score_penalty": 0}  # ints, as theirs
    meta: dict[str, Any] = {"total_length": 0, "duration_game": 0, "duration_system": 0, "exceptions": []}
    status = "Perfect"
    for r in records:
        for k in means:
            means[k] += r.scores[k] / total
        meta["total_length"] += r.meta["route_length"]
        meta["duration_game"] += r.meta["duration_game"]
        meta["duration_system"] += r.meta["duration_system"]
        result = "Failed" if "Failed" in r.status else r.status
        if result == "Failed":
            meta["exceptions"].append([r.route_id, r.index, r.status])
            status = "Failed"
        elif status == "Perfect" and result != "Perfect":
            status = result
    means = {k: round(v, ROUND_DIGITS_SCORE) for k, v in means.items()}
    std = {k: 0 for k in means}
    if total != 1:
        for k in std:
            acc = sum(math.pow(r.scores[k] - means[k], 2) for r in records)
            std[k] = round(math.sqrt(acc / float(total - 1)), ROUND_DIGITS) if total > 1 else 0
    km_driven = 0.0
    for r in records:
        km_driven += r.meta["route_length"] / 1000 * r.scores["score_route"] / 100
        for k in keys:
            infractions[k] += outside_lanes_km(r) if k == OUTSIDE_LANES else len(r.infractions.get(k, []))
    km_driven = max(km_driven, 0.001)
    for k in keys:
        if k != OUTSIDE_LANES:
            infractions[k] /= km_driven
        infractions[k] = round(infractions[k], ROUND_DIGITS)
    return {"index": -1, "route_id": -1, "status": status, "infractions": infractions,
            "scores_mean": means, "scores_std_dev": std, "meta": meta}


def _global_record_1_0(records: Sequence[RouteRecord], total: int) -> dict:
    keys = INFRACTION_KEYS["1.0"]
    scores = {"score_route": 0.0, "score_penalty": 0.0, "score_composed": 0.0}
    infractions: dict[str, float] = {k: 0 for k in keys}
    meta: dict[str, Any] = {"total_length": 0, "duration_system": 0, "duration_game": 0}
    status = "Completed"
    for r in records:
        for k in scores:
            scores[k] += r.scores[k]
        meta["total_length"] += r.meta["route_length"]
        meta["duration_game"] += r.meta["duration_game"]
        meta["duration_system"] += r.meta["duration_system"]
        if r.scores["score_route"] != 0:  # infractions of a route that never moved are ignored
            km = r.scores["score_route"] / 100 * r.meta["route_length"] / 1000.0
            for k in keys:
                infractions[k] += len(r.infractions.get(k, [])) / km
        # the leaderboard compares with 'is not'; equality is what it means
        if r.status != "Completed":
            status = "Failed"
            meta.setdefault("exceptions", []).append([r.route_id, r.index, r.status])
    if records:
        scores = {k: v / float(total) for k, v in scores.items()}
    if total == 1:
        std: dict[str, Any] = {k: "NaN" for k in scores}
    else:
        std = {k: 0.0 for k in scores}
        for r in records:
            for k in std:
                std[k] += math.pow(r.scores[k] - scores[k], 2)
        std = {k: math.sqrt(v / float(total - 1)) if total > 1 else 0.0 for k, v in std.items()}
    return {"route_id": -1, "index": -1, "status": status, "infractions": infractions, "scores": scores,
            "meta": meta, "scores_std_dev": std}


def global_values(glob: dict, version: str = "2.0") -> list[str]:
    """The ``values`` list of results.json, matching ``LABELS[version]``."""
    version = check_version(version)
    inf = glob["infractions"]
    if version == "1.0":
        s = glob["scores"]
        nums = [s["score_composed"], s["score_route"], s["score_penalty"]] + [inf[k] for k in _VALUE_KEYS[:9]]
        return [f"{v:.3f}" for v in nums]
    s = glob["scores_mean"]
    nums = [s["score_composed"], s["score_route"], s["score_penalty"]] + [inf[k] for k in _VALUE_KEYS]
    return [str(v) for v in nums]
