"""Leaderboard route files, read and written in both formats.

1.0: ``<route id town><weather .../><waypoint x y z pitch roll yaw/>…</route>``
2.x: ``<route id town><weathers><weather route_percentage …/>…</weathers><waypoints><position x y z/>…
</waypoints><scenarios><scenario name type><trigger_point …/>…</scenario></scenarios></route>``

In memory (``driving.types.Route``): ``weather`` is a static attribute dict (1.0 ``<weather>``, or 2.x
``<weathers>`` holding the same weather at 0 % and 100 %), else ``{"keyframes": [...]}``; a scenario is ``{"name", "type", <child tag>: attrs | [attrs, ...]}``. Numbers are
floats, written with ``repr`` so a read → write → read round trip is exact. Extra elements are harmless
to the leaderboard's parsers, so 1.0 files keep scenarios in a 2.x-style ``<scenarios>`` block and 2.x
positions carry pitch/roll/yaw when non-zero.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from driving.types import Keypoint, Route
from langprop.atomic import atomic_write_bytes

FORMATS = ("1.0", "2.x")


class RouteFileError(ValueError):
    """A route file cannot be read; the message names the file, the route id and the field."""


def _value(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        number = float(value)
        return str(int(number)) if number.is_integer() and abs(number) < 1e15 else repr(number)
    return str(value)


def _attrs(elem: ET.Element) -> dict[str, Any]:
    return {k: _value(v) for k, v in elem.attrib.items()}


# ----------------------------------------------------------------------------- reading
def read_routes(path: str | Path) -> list[Route]:
    """All routes of a leaderboard route file (format auto-detected per route)."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        raise RouteFileError(f"{path}: route file not found") from None
    except OSError as exc:
        raise RouteFileError(f"{path}: cannot read route file: {exc.strerror}") from None
    except ET.ParseError as exc:
        raise RouteFileError(f"{path}: not well-formed XML ({exc})") from None
    if root.tag != "routes":
        raise RouteFileError(f"{path}: root element is <{root.tag}>, expected <routes>")
    routes: list[Route] = []
    seen: set[str] = set()
    for index, elem in enumerate(root.findall("route")):
        route = _read_route(path, index, elem)
        if route.id in seen:
            raise RouteFileError(f"{path}: route id {route.id!r} appears more than once")
        seen.add(route.id)
        routes.append(route)
    if not routes:
        raise RouteFileError(f"{path}: no <route> elements")
    return routes


def _read_route(path: Path, index: int, elem: ET.Element) -> Route:
    rid = elem.get("id")
    where = f"{path}: route {rid!r}" if rid is not None else f"{path}: route #{index}"
    if rid is None:
        raise RouteFileError(f"{where}: missing attribute 'id'")
    town = elem.get("town")
    if not town:
        raise RouteFileError(f"{where}: missing attribute 'town'")
    container = elem.find("waypoints")
    points = container.findall("position") if container is not None else elem.findall("waypoint")
    tag = "position" if container is not None else "waypoint"
    if len(points) < 2:
        raise RouteFileError(f"{where}: needs at least 2 <{tag}> keypoints, found {len(points)}")
    keypoints = [_keypoint(where, tag, i, p) for i, p in enumerate(points)]
    weathers = elem.find("weathers")
    if weathers is not None:
        weather: dict[str, Any] = _static_or_keyframes([_attrs(w) for w in weathers.findall("weather")])
    else:
        single = elem.find("weather")
        weather = _attrs(single) if single is not None else {}
    scenarios = []
    block = elem.find("scenarios")
    for j, sc in enumerate(block.findall("scenario") if block is not None else []):
        if sc.get("name") is None or sc.get("type") is None:
            raise RouteFileError(f"{where}: <scenario> #{j} needs attributes 'name' and 'type'")
        data: dict[str, Any] = {"name": sc.get("name"), "type": sc.get("type")}
        for child in sc:
            attrs = _attrs(child)
            if child.tag in data:
                prev = data[child.tag]
                data[child.tag] = (prev if isinstance(prev, list) else [prev]) + [attrs]
            else:
                data[child.tag] = attrs
        scenarios.append(data)
    return Route(id=rid, town=town, keypoints=keypoints, weather=weather, scenarios=scenarios)


def _static_or_keyframes(frames: list[dict[str, Any]]) -> dict[str, Any]:
    """Two identical keyframes at 0 % and 100 % are a static weather (what ``write_routes`` emits for one)."""
    if len(frames) == 2 and [f.get("route_percentage") for f in frames] == [0.0, 100.0]:
        a, b = ({k: v for k, v in f.items() if k != "route_percentage"} for f in frames)
        if a == b:
            return a
    return {"keyframes": frames}


def _keypoint(where: str, tag: str, i: int, elem: ET.Element) -> Keypoint:
    values: dict[str, float] = {}
    for name in ("x", "y", "z", "yaw", "pitch", "roll"):
        raw = elem.get(name)
        if raw is None:
            if name in ("x", "y"):
                raise RouteFileError(f"{where}: <{tag}> #{i} is missing attribute {name!r}")
            continue
        try:
            values[name] = float(raw)
        except ValueError:
            raise RouteFileError(f"{where}: <{tag}> #{i} attribute {name!r} is not a number ({raw!r})") from None
    return Keypoint(**values)


# ----------------------------------------------------------------------------- writing
def write_routes(routes: list[Route], path: str | Path, fmt: str = "2.x") -> Path:
    """Write ``routes`` as a leaderboard route file in format ``fmt`` ("1.0" | "2.x"), atomically."""
    if fmt not in FORMATS:
        raise ValueError(f"route file format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    root = ET.Element("routes")
    for route in routes:
        elem = ET.SubElement(root, "route", id=str(route.id), town=route.town)
        _write_weather(elem, route.weather, fmt)
        if fmt == "1.0":
            for k in route.keypoints:
                ET.SubElement(elem, "waypoint", x=_text(k.x), y=_text(k.y), z=_text(k.z), pitch=_text(k.pitch),
                              roll=_text(k.roll), yaw=_text(k.yaw))
        else:
            waypoints = ET.SubElement(elem, "waypoints")
            for k in route.keypoints:
                pos = ET.SubElement(waypoints, "position", x=_text(k.x), y=_text(k.y), z=_text(k.z))
                for name in ("pitch", "roll", "yaw"):
                    if getattr(k, name):
                        pos.set(name, _text(getattr(k, name)))
        if route.scenarios or fmt == "2.x":
            block = ET.SubElement(elem, "scenarios")
            for sc in route.scenarios:
                node = ET.SubElement(block, "scenario", name=str(sc["name"]), type=str(sc["type"]))
                for tag, attrs in sc.items():
                    if tag in ("name", "type"):
                        continue
                    for one in attrs if isinstance(attrs, list) else [attrs]:
                        ET.SubElement(node, tag, {k: _text(v) for k, v in one.items()})
    ET.indent(root, space="   ")
    data = ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"
    return atomic_write_bytes(path, data)


def _write_weather(elem: ET.Element, weather: dict[str, Any], fmt: str) -> None:
    if not weather:
        return
    keyframes = weather.get("keyframes")
    if fmt == "1.0":
        # 1.0 has one static weather: the first keyframe stands for the route
        attrs = {k: v for k, v in (keyframes[0] if keyframes else weather).items() if k != "route_percentage"}
        ET.SubElement(elem, "weather", {k: _text(v) for k, v in attrs.items()})
        return
    if keyframes is None:  # a static weather holds over the whole route
        keyframes = [{"route_percentage": 0.0, **weather}, {"route_percentage": 100.0, **weather}]
    block = ET.SubElement(elem, "weathers")
    for frame in keyframes:
        ET.SubElement(block, "weather", {k: _text(v) for k, v in frame.items()})
