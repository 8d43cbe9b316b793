"""The leaderboard's evaluation criteria on our WorldTicks: collisions, red lights, stop signs,
outside route lanes, route deviation, blocked agent, timeout, minimum speed, route completion.

``RouteMonitor`` runs them all for one route; ``driving.scoring`` turns its events into scores.
"""

from __future__ import annotations

from typing import Any

from driving.criteria.events import (
    INFRACTION_KINDS,
    PARAMS,
    VERSIONS,
    CriteriaParams,
    InfractionEvent,
    UnknownVersionError,
    check_version,
)

__all__ = [
    "INFRACTION_KINDS", "PARAMS", "VERSIONS", "CriteriaParams", "InfractionEvent", "RouteMonitor",
    "UnknownVersionError", "check_version",
]


def __getattr__(name: str) -> Any:
    # RouteMonitor imports driving.scoring, which imports this package: load it on first use.
    if name == "RouteMonitor":
        from driving.criteria.monitor import RouteMonitor

        return RouteMonitor
    raise AttributeError(f"module 'driving.criteria' has no attribute {name!r}")
