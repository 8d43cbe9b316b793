"""The static map layer: a top-down raster of a town's roads, sidewalks and lane markings.

Built once per (town, resolution) by sampling the ``carla.Map``'s driving waypoints and their
neighbouring lanes, then cached in-process and on disk, so a bird's-eye view only has to crop and
rotate it (one ``cv2.warpAffine``) and draw the dynamic parts on top.

Raster frame: pixel ``(u, v) = ((x - origin_x) * ppm, (y - origin_y) * ppm)`` in the CARLA world
frame (x east, y south), so north is up and the image is not mirrored. Colours are RGB.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

log = logging.getLogger(__name__)

LAYER_VERSION = 1  # bump when the drawing changes so disk caches are rebuilt
MAX_LAYER_PIXELS = 4096  # per side (<= 48 MiB RGB); larger towns get a coarser layer


@dataclass(frozen=True)
class MapColours:
    """RGB colours of the static layer."""

    background: tuple[int, int, int] = (24, 24, 24)
    road: tuple[int, int, int] = (72, 72, 72)
    junction: tuple[int, int, int] = (82, 82, 82)
    sidewalk: tuple[int, int, int] = (112, 108, 96)
    marking: tuple[int, int, int] = (210, 210, 210)
    marking_yellow: tuple[int, int, int] = (220, 190, 40)


@dataclass
class MapLayer:
    """A rasterised town. ``image`` is HxWx3 uint8 RGB; see the module docstring for the frame."""

    image: np.ndarray
    origin_x: float
    origin_y: float
    ppm: float  # pixels per metre

    def world_to_px(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) world points -> (N, 2) float pixel coordinates of this layer."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        return (xy - (self.origin_x, self.origin_y)) * self.ppm


_MEMORY_CACHE: dict[tuple[str, float], MapLayer] = {}


def _default_cache_dir() -> Path:
    root = os.environ.get("LANGPROP_DRIVE_CACHE") or Path.home() / ".cache" / "langprop-drive"
    return Path(root) / "bev"


def map_key(carla_map: Any) -> str:
    """Content hash of a ``carla.Map`` (its OpenDRIVE text), stable across processes."""
    return hashlib.sha256(carla_map.to_opendrive().encode()).hexdigest()[:16]


def get_map_layer(carla_map: Any, ppm: float = 4.0, cache_dir: str | Path | bool | None = None) -> MapLayer:
    """The static layer of ``carla_map`` at ``ppm`` pixels per metre, built at most once.

    ``cache_dir=None`` (or ``True``) uses ``$LANGPROP_DRIVE_CACHE/bev`` (default
    ``~/.cache/langprop-drive/bev``); ``False`` keeps the cache in this process only.
    """
    key = (map_key(carla_map), float(ppm))
    layer = _MEMORY_CACHE.get(key)
    if layer is not None:
        return layer
    if cache_dir is None or cache_dir is True:
        directory: Path | None = _default_cache_dir()
    else:
        directory = Path(cache_dir) if cache_dir else None
    stem = f"{key[0]}_{ppm:g}_v{LAYER_VERSION}"
    if directory is not None:
        layer = _load(directory, stem)
    if layer is None:
        layer = build_map_layer(carla_map, ppm)
        if directory is not None:
            _save(directory, stem, layer)
    _MEMORY_CACHE[key] = layer
    return layer


def _load(directory: Path, stem: str) -> MapLayer | None:
    png, meta = directory / f"{stem}.png", directory / f"{stem}.json"
    if not (png.exists() and meta.exists()):
        return None
    try:
        info = json.loads(meta.read_text())
        bgr = cv2.imread(str(png), cv2.IMREAD_COLOR)
        if bgr is None:
            return None
        return MapLayer(np.ascontiguousarray(bgr[:, :, ::-1]), info["origin_x"], info["origin_y"], info["ppm"])
    except (OSError, ValueError, KeyError) as exc:  # a damaged cache entry is rebuilt, not fatal
        log.warning("ignoring damaged BEV cache %s: %s", png, exc)
        return None


def _save(directory: Path, stem: str, layer: MapLayer) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        # Write to temp names then rename: concurrent workers may build the same town.
        fd, tmp_png = tempfile.mkstemp(suffix=".png", dir=directory)
        os.close(fd)
        cv2.imwrite(tmp_png, np.ascontiguousarray(layer.image[:, :, ::-1]))
        os.replace(tmp_png, directory / f"{stem}.png")
        fd, tmp_json = tempfile.mkstemp(suffix=".json", dir=directory)
        with os.fdopen(fd, "w") as fh:
            json.dump({"origin_x": layer.origin_x, "origin_y": layer.origin_y, "ppm": layer.ppm}, fh)
        os.replace(tmp_json, directory / f"{stem}.json")
    except OSError as exc:
        log.warning("could not cache the BEV map layer in %s: %s", directory, exc)


def _rects(centres: np.ndarray, yaws_deg: np.ndarray, half_len: np.ndarray, half_wid: np.ndarray) -> np.ndarray:
    """(N, 4, 2) corners of oriented rectangles in the world frame."""
    yaw = np.radians(yaws_deg)
    fwd = np.stack([np.cos(yaw), np.sin(yaw)], axis=1)
    right = np.stack([-np.sin(yaw), np.cos(yaw)], axis=1)
    hl, hw = half_len[:, None], half_wid[:, None]
    return np.stack(
        [centres + fwd * hl + right * hw, centres + fwd * hl - right * hw,
         centres - fwd * hl - right * hw, centres - fwd * hl + right * hw], axis=1)


def build_map_layer(carla_map: Any, ppm: float = 4.0, step: float = 1.0,
                    colours: MapColours | None = None) -> MapLayer:
    """Rasterise ``carla_map``: lane surfaces, sidewalks and lane markings (no caching)."""
    colours = colours or MapColours()
    waypoints = carla_map.generate_waypoints(step)
    if not waypoints:
        raise ValueError(f"map {carla_map.name!r} has no driving lanes to render")
    n = len(waypoints)
    pos = np.empty((n, 2))
    yaw = np.empty(n)
    width = np.empty(n)
    junction = np.zeros(n, dtype=bool)
    sidewalks: list[tuple[float, float, float, float]] = []
    markings: list[tuple[float, float, float, str, str, bool]] = []  # x, y, yaw, type, colour, broken-on
    for i, wp in enumerate(waypoints):
        t = wp.transform
        pos[i] = t.location.x, t.location.y
        yaw[i] = t.rotation.yaw
        width[i] = wp.lane_width
        junction[i] = wp.is_junction
        if wp.is_junction:
            continue  # connector lanes overlap; markings and sidewalks there only add clutter
        side = wp.get_right_lane()
        for _ in range(3):  # walk outwards past shoulders/parking to the sidewalk
            if side is None:
                break
            if str(side.lane_type) == "Sidewalk":
                st = side.transform
                sidewalks.append((st.location.x, st.location.y, st.rotation.yaw, side.lane_width))
                break
            side = side.get_right_lane()
        dash = (wp.s % 6.0) < 3.0
        for sign, marking in ((-1.0, wp.left_lane_marking), (1.0, wp.right_lane_marking)):
            kind = str(marking.type)
            if kind in ("NONE", "Other"):
                continue
            r = math.radians(yaw[i])
            off = sign * wp.lane_width / 2.0
            markings.append((pos[i, 0] - math.sin(r) * off, pos[i, 1] + math.cos(r) * off, yaw[i],
                             kind, str(marking.color), dash))

    side_arr = np.array(sidewalks, dtype=np.float64).reshape(-1, 4)
    margin = 10.0
    all_xy = np.concatenate([pos, side_arr[:, :2]]) if len(side_arr) else pos
    lo = all_xy.min(axis=0) - margin
    hi = all_xy.max(axis=0) + margin
    extent = float((hi - lo).max())
    if extent * ppm > MAX_LAYER_PIXELS:
        ppm = MAX_LAYER_PIXELS / extent
        log.info("map %s is large; BEV layer at %.2f px/m", carla_map.name, ppm)
    w_px, h_px = (np.ceil((hi - lo) * ppm).astype(int) + 1).tolist()
    image = np.empty((h_px, w_px, 3), dtype=np.uint8)
    image[:] = colours.background
    layer = MapLayer(image, float(lo[0]), float(lo[1]), float(ppm))

    def fill(corners: np.ndarray, colour: tuple[int, int, int]) -> None:
        if len(corners):
            px = np.round(layer.world_to_px(corners.reshape(-1, 2)) * 8).astype(np.int32).reshape(-1, 4, 2)
            # One call per quad: fillPoly with many polygons uses even-odd filling, so overlaps vanish.
            for quad in px:
                cv2.fillConvexPoly(image, quad, colour, cv2.LINE_8, 3)

    half_step = np.full(n, step * 0.6)  # slight overlap closes gaps on curves
    if len(side_arr):
        fill(_rects(side_arr[:, :2], side_arr[:, 2], np.full(len(side_arr), step * 0.6), side_arr[:, 3] / 2),
             colours.sidewalk)
    fill(_rects(pos[~junction], yaw[~junction], half_step[~junction], width[~junction] / 2), colours.road)
    fill(_rects(pos[junction], yaw[junction], half_step[junction], width[junction] / 2), colours.junction)

    thickness = max(1, round(0.15 * ppm))
    for x, y, myaw, kind, colour, dash in markings:
        if kind.startswith("Broken") and not dash:
            continue
        r = math.radians(myaw)
        d = np.array([math.cos(r), math.sin(r)]) * step * 0.5
        a, b = layer.world_to_px(np.array([[x, y] - d, [x, y] + d]))
        rgb = colours.marking_yellow if colour == "Yellow" else colours.marking
        cv2.line(image, (round(a[0]), round(a[1])), (round(b[0]), round(b[1])), rgb, thickness)
    log.debug("built BEV map layer %dx%d at %.2f px/m from %d waypoints", w_px, h_px, ppm, n)
    return layer
