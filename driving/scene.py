"""The privileged Scene: the one typed description of what a driver sees each tick.

Both worlds (embedded SUMO world, real CARLA) produce it; the HDF5 recorder stores it losslessly;
the LangProp policy receives ``scene.to_dict()`` (plain dicts, lists, floats, strings, None); the LLM
prompt's description of the input is rendered from the field docs below (``describe_schema``), so
code and prompt never drift.

Frames and units (everywhere in this module):
- **World frame** = CARLA's: left-handed, metres, x east, y south (``y_carla = -y_sumo``), yaw in
  degrees, 0 along +x, positive turning from +x towards +y (clockwise seen from above).
- **Ego frame**: origin at the ego's bounding-box centre, +x forward, +y to the ego's right
  (CARLA's left-handed convention), metres. A point straight ahead 10 m is (10, 0); a point 3 m to
  the right is (0, 3).
- Speeds are signed forward speeds in m/s (negative when reversing); angles in degrees.
- Extents are **half**-extents (centre to edge), metres.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

SCENE_SCHEMA_VERSION = 1


def _f(doc: str, **kwargs: Any) -> Any:
    """A dataclass field carrying its documentation (units and frame) in metadata."""
    return field(metadata={"doc": doc}, **kwargs)


@dataclass
class EgoState:
    x: float = _f("world-frame x of the bounding-box centre, m")
    y: float = _f("world-frame y of the bounding-box centre, m")
    yaw: float = _f("world-frame heading, degrees in (-180, 180]")
    speed: float = _f("signed forward speed, m/s")
    acceleration: float = _f("signed forward acceleration, m/s^2")
    half_length: float = _f("half of the vehicle length (centre to front bumper), m")
    half_width: float = _f("half of the vehicle width, m")
    steer: float = _f("steering command applied last tick, in [-1, 1] (positive = right)")


@dataclass
class RoutePoint:
    x: float = _f("world-frame x, m")
    y: float = _f("world-frame y, m")
    ego_x: float = _f("ego-frame x (forward), m")
    ego_y: float = _f("ego-frame y (right), m")
    distance: float = _f("distance along the route from the ego's projection onto it, m")
    road_option: str = _f(
        "leaderboard RoadOption label of this point: LANEFOLLOW, LEFT, RIGHT, STRAIGHT, "
        "CHANGELANELEFT, CHANGELANERIGHT or VOID"
    )


@dataclass
class Actor:
    id: int = _f("stable integer id of the actor for the whole episode")
    kind: str = _f("'vehicle', 'pedestrian' or 'static' (a parked prop or obstacle)")
    x: float = _f("world-frame x of the bounding-box centre, m")
    y: float = _f("world-frame y of the bounding-box centre, m")
    yaw: float = _f("world-frame heading, degrees")
    ego_x: float = _f("ego-frame x (forward) of the centre, m")
    ego_y: float = _f("ego-frame y (right) of the centre, m")
    ego_yaw: float = _f("heading relative to the ego's heading, degrees in (-180, 180]")
    speed: float = _f("signed forward speed along the actor's own heading, m/s")
    half_length: float = _f("half-extent along the actor's heading, m")
    half_width: float = _f("half-extent across the actor's heading, m")
    distance: float = _f("centre-to-centre distance to the ego, m")


@dataclass
class TrafficLight:
    id: str = _f("landmark id of the light governing the ego's next link ('<tls>_<link>')")
    state: str = _f("'red', 'yellow', 'green' or 'off'")
    distance_to_stop_line: float = _f(
        "distance along the route from the ego's front bumper to the stop line, m; "
        "negative once the front bumper is past it"
    )


@dataclass
class StopSign:
    id: str = _f("landmark id of the stop sign")
    distance_to_stop_line: float = _f(
        "distance along the route from the ego's front bumper to the stop line, m"
    )
    cleared: bool = _f("True once the ego has stopped (speed < 0.1 m/s) for this sign")


@dataclass
class Scene:
    """Everything a privileged driver knows at one tick. See the module docstring for frames."""

    frame: int = _f("simulation tick index since the route started (20 Hz)")
    timestamp: float = _f("simulated seconds since the route started")
    ego: EgoState = _f("the ego vehicle")
    route: list[RoutePoint] = _f(
        "the route ahead, starting at the ego's projection, about 1 m apart, up to ~100 m"
    )
    target: RoutePoint | None = _f("the first route point at least 4 m ahead of the ego (None at the end)")
    vehicles: list[Actor] = _f("other vehicles within the perception radius (50 m), nearest first")
    pedestrians: list[Actor] = _f("pedestrians within the perception radius (50 m), nearest first")
    traffic_light: TrafficLight | None = _f(
        "the traffic light governing the ego's next junction link on its route, or None"
    )
    stop_signs: list[StopSign] = _f("stop signs on the route ahead within 50 m, nearest first")
    speed_limit: float = _f("speed limit of the ego's current lane, m/s")
    in_junction: bool = _f("True while the ego's centre is inside a junction")
    distance_to_junction: float | None = _f(
        "distance along the route from the ego's centre to the entry of the next junction, m; 0 inside "
        "one; None if none within 100 m"
    )
    obstacles: list[Actor] = _f(
        "static obstacles (props, parked objects: speed 0) within the perception radius, nearest first",
        default_factory=list,
    )

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict view handed to policies (nested dicts/lists/floats/str/None; no dataclasses)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scene:
        def opt(kind: type, value: Any) -> Any:
            return None if value is None else kind(**value)

        return cls(
            frame=int(data["frame"]),
            timestamp=float(data["timestamp"]),
            ego=EgoState(**data["ego"]),
            route=[RoutePoint(**p) for p in data["route"]],
            target=opt(RoutePoint, data["target"]),
            vehicles=[Actor(**a) for a in data["vehicles"]],
            pedestrians=[Actor(**a) for a in data["pedestrians"]],
            traffic_light=opt(TrafficLight, data["traffic_light"]),
            stop_signs=[StopSign(**s) for s in data["stop_signs"]],
            speed_limit=float(data["speed_limit"]),
            in_junction=bool(data["in_junction"]),
            distance_to_junction=data["distance_to_junction"],
            obstacles=[Actor(**a) for a in data.get("obstacles", [])],
        )


def describe_schema(cls: type = Scene, indent: int = 0) -> str:
    """Human-readable description of the schema for prompts, generated from the field docs."""
    lines: list[str] = []
    pad = "  " * indent
    nested = {"ego": EgoState, "route": RoutePoint, "target": RoutePoint, "vehicles": Actor,
              "pedestrians": Actor, "obstacles": Actor, "traffic_light": TrafficLight, "stop_signs": StopSign}
    for f in dataclasses.fields(cls):
        lines.append(f"{pad}- `{f.name}`: {f.metadata.get('doc', '')}")
        sub = nested.get(f.name) if cls is Scene else None
        if sub is not None:
            lines.append(describe_schema(sub, indent + 1))
    return "\n".join(lines)


def world_to_ego(ego_x: float, ego_y: float, ego_yaw_deg: float, x: float, y: float) -> tuple[float, float]:
    """World-frame point -> ego frame (x forward, y right). Both frames are left-handed."""
    c, s = math.cos(math.radians(ego_yaw_deg)), math.sin(math.radians(ego_yaw_deg))
    dx, dy = x - ego_x, y - ego_y
    return c * dx + s * dy, -s * dx + c * dy


def wrap_degrees(angle: float) -> float:
    """Wrap an angle in degrees to (-180, 180]."""
    wrapped = math.fmod(angle + 180.0, 360.0)
    if wrapped <= 0.0:
        wrapped += 360.0
    return wrapped - 180.0
