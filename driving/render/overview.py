"""A full-map overview of one route: roads, the planned route, the driven path and infractions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from driving.render.bev import EventLike, Palette
from driving.render.map_layer import MapLayer
from driving.types import Route

START_COLOUR = (0, 230, 0)
END_COLOUR = (255, 60, 60)
DRIVEN_COLOUR = (240, 240, 240)


def render_overview(layer: MapLayer, route: Route | None = None, trajectory: np.ndarray | None = None,
                    events: Sequence[EventLike] = (), palette: Palette | None = None,
                    max_size: int = 1600) -> np.ndarray:
    """An RGB image of the whole town (north up) with ``route``, the driven ``trajectory`` ((N, 2)
    world points) and infraction ``events`` marked; downscaled so its longer side is <= ``max_size``."""
    palette = palette or Palette()
    image = layer.image
    scale = min(1.0, max_size / max(image.shape[:2]))
    if scale < 1.0:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    else:
        image = image.copy()
    ppm = layer.ppm * scale
    thick = max(2, round(0.8 * ppm))

    def px(xy: np.ndarray) -> np.ndarray:
        return np.round(layer.world_to_px(xy) * scale).astype(np.int32)

    if route is not None and len(route.dense) > 1:
        pts = px(np.array([(w.x, w.y) for w in route.dense]))
        cv2.polylines(image, [pts], False, palette.route, thick, cv2.LINE_AA)
        cv2.circle(image, tuple(pts[0]), 3 * thick, START_COLOUR, -1)
        cv2.circle(image, tuple(pts[-1]), 3 * thick, END_COLOUR, -1)
    if trajectory is not None and len(trajectory) > 1:
        cv2.polylines(image, [px(np.asarray(trajectory))], False, DRIVEN_COLOUR, max(1, thick // 2), cv2.LINE_AA)
    size = 3 * thick
    for ev in events:
        u, v = px(np.array([ev.x, ev.y]))[0]
        cv2.line(image, (u - size, v - size), (u + size, v + size), palette.infraction, thick)
        cv2.line(image, (u - size, v + size), (u + size, v - size), palette.infraction, thick)
    return image


def save_png(image: np.ndarray, path: str | Path) -> Path:
    """Write an RGB image as PNG (creating the folder); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(image[:, :, ::-1])):
        raise OSError(f"could not write {path}")
    return path
