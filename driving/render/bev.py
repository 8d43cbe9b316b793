"""Bird's-eye-view frames centred on the ego, drawn with OpenCV on top of the cached map layer.

A frame is HxWx3 uint8 **RGB**, the ego's heading points up, its right is the image's right (the
ego frame of ``driving.scene``: x forward -> up, y right -> right). The static roads come from
``map_layer`` (one ``warpAffine`` per frame); the route, stop lines coloured by light state, actors
as oriented boxes coloured by kind, infraction markers and a small HUD are drawn per frame.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import cv2
import numpy as np

from driving.render.map_layer import MapLayer, get_map_layer
from driving.types import ActorBox, Route, WorldTick

_SHIFT = 3  # fixed-point bits for sub-pixel polygon drawing
_SCALE = 1 << _SHIFT


class StopLineLike(Protocol):
    """What the renderer needs of ``driving.signals.StopLine``."""

    id: str
    kind: str  # 'traffic_light' | 'stop'
    x: float
    y: float
    yaw: float
    half_width: float


class EventLike(Protocol):
    """What the renderer needs of ``driving.criteria.InfractionEvent``."""

    kind: str
    x: float
    y: float


@dataclass(frozen=True)
class Palette:
    """RGB colours of the dynamic layer (tests read them to find things in a frame)."""

    ego: tuple[int, int, int] = (240, 240, 240)
    ego_front: tuple[int, int, int] = (40, 40, 40)
    vehicle: tuple[int, int, int] = (70, 140, 255)
    pedestrian: tuple[int, int, int] = (255, 170, 40)
    static: tuple[int, int, int] = (150, 110, 70)
    route: tuple[int, int, int] = (0, 200, 200)
    route_done: tuple[int, int, int] = (0, 90, 90)
    light: dict[str, tuple[int, int, int]] = field(default_factory=lambda: {
        "red": (255, 0, 0), "yellow": (255, 210, 0), "green": (0, 200, 0), "off": (128, 128, 128)})
    stop_sign: tuple[int, int, int] = (230, 80, 160)
    infraction: tuple[int, int, int] = (255, 0, 255)
    hud_text: tuple[int, int, int] = (255, 255, 255)
    hud_box: tuple[int, int, int] = (0, 0, 0)

    def actor(self, kind: str) -> tuple[int, int, int]:
        return {"vehicle": self.vehicle, "pedestrian": self.pedestrian, "ego": self.ego}.get(kind, self.static)


@dataclass
class BEVConfig:
    """Size and scale of a BEV frame."""

    width: int = 256  # px; multiples of 16 keep H.264 encoders happy
    height: int = 256
    ppm: float = 4.0  # pixels per metre in the frame
    ego_row: float = 0.65  # ego centre at this fraction of the height (more road ahead than behind)
    map_ppm: float = 4.0  # resolution of the cached static layer
    hud: bool = True


def oriented_box_corners(x: np.ndarray, y: np.ndarray, yaw_deg: np.ndarray, half_length: np.ndarray,
                         half_width: np.ndarray) -> np.ndarray:
    """(N, 4, 2) world-frame corners: front-right, front-left, rear-left, rear-right (y is south)."""
    yaw = np.radians(np.asarray(yaw_deg, dtype=np.float64))
    c, s = np.cos(yaw), np.sin(yaw)
    fx, fy = c * half_length, s * half_length  # forward half vector
    rx, ry = -s * half_width, c * half_width  # right half vector (left-handed frame)
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return np.stack([
        np.stack([x + fx + rx, y + fy + ry], -1), np.stack([x + fx - rx, y + fy - ry], -1),
        np.stack([x - fx - rx, y - fy - ry], -1), np.stack([x - fx + rx, y - fy + ry], -1)], axis=-2)


def _stop_line_ends(lines: Sequence[StopLineLike]) -> np.ndarray:
    """(N, 2, 2) world end points of each stop line's bar. A lane with several light links (left,
    straight, right) has one line per link at the same place: each gets its own part of the bar, in
    order, so a red straight next to a green left turn stays visible."""
    if not lines:
        return np.zeros((0, 2, 2))
    groups: dict[tuple[int, int], list[int]] = {}
    for i, line in enumerate(lines):
        groups.setdefault((round(line.x * 2), round(line.y * 2)), []).append(i)
    ends = np.zeros((len(lines), 2, 2))
    for members in groups.values():
        n = len(members)
        for k, i in enumerate(members):
            line = lines[i]
            r = math.radians(line.yaw)
            across = np.array([-math.sin(r), math.cos(r)]) * line.half_width  # towards the lane's right
            centre = np.array([line.x, line.y])
            ends[i, 0] = centre - across + across * (2.0 * k / n)
            ends[i, 1] = centre - across + across * (2.0 * (k + 1) / n)
    return ends


class BEVRenderer:
    """Renders ego-centred BEV frames of one town; reuse it across routes with ``set_route``."""

    def __init__(self, carla_map: Any, route: Route | None = None, stop_lines: Iterable[StopLineLike] = (),
                 config: BEVConfig | None = None, palette: Palette | None = None,
                 layer: MapLayer | None = None, cache_dir: Any = None) -> None:
        self.config = config or BEVConfig()
        self.palette = palette or Palette()
        self.layer = layer or get_map_layer(carla_map, self.config.map_ppm, cache_dir)
        lines = list(stop_lines)
        self._stop_lines = lines
        self._stop_xy = np.array([(s.x, s.y) for s in lines], dtype=np.float64).reshape(-1, 2)
        self._stop_ends = _stop_line_ends(lines)  # (N, 2, 2)
        self._route_xy = np.zeros((0, 2))
        self._route_index = 0
        if route is not None:
            self.set_route(route)

    def set_route(self, route: Route) -> None:
        self._route_xy = np.array([(w.x, w.y) for w in route.dense], dtype=np.float64).reshape(-1, 2)
        self._route_index = 0

    # -- geometry ---------------------------------------------------------------------------------
    def _view_affine(self, ego: ActorBox) -> tuple[np.ndarray, np.ndarray]:
        """(A, b) with view_px = A @ world_xy + b for the current ego pose."""
        cfg = self.config
        r = math.radians(ego.yaw)
        c, s = math.cos(r), math.sin(r)
        a = cfg.ppm * np.array([[-s, c], [-c, -s]])
        centre = np.array([cfg.width / 2.0, cfg.height * cfg.ego_row])
        return a, centre - a @ np.array([ego.x, ego.y])

    def world_to_view(self, ego: ActorBox, xy: np.ndarray) -> np.ndarray:
        """(N, 2) world points -> (N, 2) float pixel coordinates of the frame centred on ``ego``."""
        a, b = self._view_affine(ego)
        return np.asarray(xy, dtype=np.float64).reshape(-1, 2) @ a.T + b

    def _fixed(self, px: np.ndarray) -> np.ndarray:
        return np.round(px * _SCALE).astype(np.int32)

    # -- drawing ----------------------------------------------------------------------------------
    def render(self, tick: WorldTick, route_completion: float | None = None,
               events: Sequence[EventLike] = ()) -> np.ndarray:
        """One RGB frame of ``tick`` (HUD shows time, speed, ``route_completion`` % and ``events``)."""
        cfg, layer = self.config, self.layer
        a, b = self._view_affine(tick.ego)
        # layer px -> world: p = L / ppm + origin, so view = (A / ppm) L + (A origin + b)
        m = np.hstack([a / layer.ppm, (a @ np.array([layer.origin_x, layer.origin_y]) + b)[:, None]])
        frame = cv2.warpAffine(layer.image, m, (cfg.width, cfg.height), flags=cv2.INTER_NEAREST,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=tuple(int(v) for v in layer.image[0, 0]))
        radius = math.hypot(cfg.width, cfg.height) / cfg.ppm  # world metres that can be on screen
        self._draw_route(frame, tick.ego, a, b)
        self._draw_stop_lines(frame, tick, a, b, radius)
        self._draw_actors(frame, tick, a, b, radius)
        self._draw_events(frame, tick.ego, events, a, b, radius)
        if cfg.hud:
            self._draw_hud(frame, tick, route_completion, events)
        return frame

    def _draw_route(self, frame: np.ndarray, ego: ActorBox, a: np.ndarray, b: np.ndarray) -> None:
        pts = self._route_xy
        if len(pts) < 2:
            return
        # The ego's progress: nearest route point in a window ahead of the last one (routes may loop).
        lo = self._route_index
        window = pts[lo:lo + 200]
        d = np.hypot(window[:, 0] - ego.x, window[:, 1] - ego.y)
        if len(d) and d.min() < 10.0:
            self._route_index = lo + int(d.argmin())
        # Only the stretch that can be on screen (route points are ~1 m apart).
        reach = int(math.hypot(self.config.width, self.config.height) / self.config.ppm) + 2
        lo = max(0, self._route_index - reach)
        split = self._route_index - lo
        thick = max(1, round(0.6 * self.config.ppm))
        view = self._fixed(pts[lo:self._route_index + reach] @ a.T + b)
        if split > 0:
            cv2.polylines(frame, [view[: split + 1]], False, self.palette.route_done, thick, cv2.LINE_AA, _SHIFT)
        if len(view) - split > 1:
            cv2.polylines(frame, [view[split:]], False, self.palette.route, thick, cv2.LINE_AA, _SHIFT)

    def _draw_stop_lines(self, frame: np.ndarray, tick: WorldTick, a: np.ndarray, b: np.ndarray,
                         radius: float) -> None:
        if not len(self._stop_xy):
            return
        near = np.flatnonzero(np.hypot(*(self._stop_xy - (tick.ego.x, tick.ego.y)).T) < radius)
        if not len(near):
            return
        thick = max(2, round(0.8 * self.config.ppm))
        ends = self._fixed(self._stop_ends[near].reshape(-1, 2) @ a.T + b).reshape(-1, 2, 2)
        lights, palette = tick.light_states, self.palette
        for i, (p, q) in zip(near, ends, strict=True):
            line = self._stop_lines[i]
            if line.kind == "traffic_light":
                colour = palette.light.get(lights.get(line.id, "off"), palette.light["off"])
            else:
                colour = palette.stop_sign
            cv2.line(frame, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), colour, thick, cv2.LINE_8, _SHIFT)

    def _draw_actors(self, frame: np.ndarray, tick: WorldTick, a: np.ndarray, b: np.ndarray,
                     radius: float) -> None:
        ego = tick.ego
        boxes = [o for o in tick.actors if abs(o.x - ego.x) < radius and abs(o.y - ego.y) < radius]
        # static first, then vehicles, pedestrians, the ego on top
        order = {"vehicle": 1, "pedestrian": 2}
        boxes.sort(key=lambda o: order.get(o.kind, 0))
        boxes.append(ego)
        arr = np.array([(o.x, o.y, o.yaw, o.half_length, o.half_width) for o in boxes], dtype=np.float64)
        polys = self._fixed(oriented_box_corners(*arr.T).reshape(-1, 2) @ a.T + b).reshape(-1, 4, 2)
        for box, quad in zip(boxes, polys, strict=True):
            colour = self.palette.ego if box is ego else self.palette.actor(box.kind)
            cv2.fillConvexPoly(frame, quad, colour, cv2.LINE_8, _SHIFT)
        # A dark notch across the front fifth shows the heading without covering the centre.
        r = math.radians(ego.yaw)
        notch = oriented_box_corners(ego.x + math.cos(r) * ego.half_length * 0.85,
                                     ego.y + math.sin(r) * ego.half_length * 0.85,
                                     ego.yaw, ego.half_length * 0.15, ego.half_width * 0.8)
        cv2.fillConvexPoly(frame, self._fixed(notch @ a.T + b), self.palette.ego_front, cv2.LINE_8, _SHIFT)

    def _draw_events(self, frame: np.ndarray, ego: ActorBox, events: Sequence[EventLike], a: np.ndarray,
                     b: np.ndarray, radius: float) -> None:
        size = max(3, round(1.2 * self.config.ppm))
        for ev in events:
            if math.hypot(ev.x - ego.x, ev.y - ego.y) > radius:
                continue
            u, v = (np.array([ev.x, ev.y]) @ a.T + b).round().astype(int)
            cv2.line(frame, (u - size, v - size), (u + size, v + size), self.palette.infraction, 2)
            cv2.line(frame, (u - size, v + size), (u + size, v - size), self.palette.infraction, 2)

    def _draw_hud(self, frame: np.ndarray, tick: WorldTick, route_completion: float | None,
                  events: Sequence[EventLike]) -> None:
        c = tick.control
        lines = [f"t {tick.time:6.1f} s  v {tick.ego.speed * 3.6:5.1f} km/h"]
        rc = "-" if route_completion is None else f"{route_completion:5.1f}%"
        lines.append(f"RC {rc}  infractions {len(events)}")
        lines.append(f"thr {c.throttle:.2f} brk {c.brake:.2f} str {c.steer:+.2f}")
        if events:
            lines.append(f"last: {events[-1].kind}")
        scale = 0.35 * self.config.width / 256
        line_h = max(10, round(13 * self.config.width / 256))
        box_w = min(self.config.width, round(190 * self.config.width / 256))
        cv2.rectangle(frame, (0, 0), (box_w, line_h * len(lines) + 4), self.palette.hud_box, -1)
        for i, text in enumerate(lines):
            cv2.putText(frame, text, (3, line_h * (i + 1)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                        self.palette.hud_text, 1, cv2.LINE_AA)
