"""Routes: leaderboard route XML (1.0 / 2.x), the RoadOption route planner, reproducible route sets."""

from driving.routes.planner import Lane, NoRouteError, RoutePlanner, turn_option
from driving.routes.route_sets import (
    DEFAULT_SPLITS,
    RouteSetError,
    generate_route_set,
    planner_for,
    write_route_set,
)
from driving.routes.route_xml import RouteFileError, read_routes, write_routes

__all__ = [
    "DEFAULT_SPLITS",
    "Lane",
    "NoRouteError",
    "RouteFileError",
    "RoutePlanner",
    "RouteSetError",
    "generate_route_set",
    "planner_for",
    "read_routes",
    "turn_option",
    "write_route_set",
    "write_routes",
]
