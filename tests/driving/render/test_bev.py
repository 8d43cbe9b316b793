"""BEV rendering on a real built town (carla.Map over SUMO-generated OpenDRIVE)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from driving.render import (
    BEVConfig,
    BEVRenderer,
    Palette,
    VideoWriter,
    count_frames,
    get_map_layer,
    render_overview,
    save_png,
)
from driving.render.map_layer import MapColours
from driving.types import ActorBox, Keypoint, RoadOption, Route, RouteWaypoint, VehicleControl, WorldTick


@dataclass
class Line:
    id: str
    kind: str
    x: float
    y: float
    yaw: float
    half_width: float


@dataclass
class Event:
    kind: str
    x: float
    y: float


@pytest.fixture(scope="module")
def cmap(grid_map):
    return grid_map


@pytest.fixture(scope="module")
def lane_wp(cmap):
    """A driving waypoint away from junctions, with a pose to put the ego on."""
    return next(w for w in cmap.generate_waypoints(2.0) if not w.is_junction and w.s > 20)


def ahead(ego: ActorBox, fwd: float, right: float) -> tuple[float, float]:
    r = math.radians(ego.yaw)
    return (ego.x + fwd * math.cos(r) - right * math.sin(r), ego.y + fwd * math.sin(r) + right * math.cos(r))


def make_tick(ego: ActorBox, actors=(), lights=None) -> WorldTick:
    return WorldTick(frame=3, time=0.15, ego=ego, control=VehicleControl(), actors=list(actors),
                     light_states=lights or {})


@pytest.fixture(scope="module")
def ego(lane_wp):
    t = lane_wp.transform
    return ActorBox(0, "ego", t.location.x, t.location.y, t.rotation.yaw, 2.4, 1.05, 4.0)


def px(cfg: BEVConfig, fwd: float, right: float) -> tuple[int, int]:
    """Expected (row, col) of an ego-frame point."""
    return round(cfg.height * cfg.ego_row - fwd * cfg.ppm), round(cfg.width / 2 + right * cfg.ppm)


def test_frame_shape_and_actor_colours(cmap, ego, tmp_path):
    cfg = BEVConfig(width=192, height=160, ppm=4.0)
    pal = Palette()
    veh = ActorBox(7, "vehicle", *ahead(ego, 12.0, 0.0), ego.yaw + 30, 2.2, 1.0, 3.0)
    ped = ActorBox(8, "pedestrian", *ahead(ego, 0.0, 6.0), 0.0, 0.4, 0.4, 1.0)
    far = ActorBox(9, "vehicle", ego.x + 500, ego.y, 0.0, 2.0, 1.0, 0.0)
    frame = BEVRenderer(cmap, config=cfg, cache_dir=tmp_path).render(make_tick(ego, [veh, ped, far]), 10.0)
    assert frame.shape == (160, 192, 3) and frame.dtype == np.uint8
    assert tuple(frame[px(cfg, 0, 0)]) == pal.ego
    assert tuple(frame[px(cfg, -2.0, 0.5)]) == pal.ego  # rear part of the ego box
    assert tuple(frame[px(cfg, 2.25, 0)]) == pal.ego_front  # heading notch points up
    assert tuple(frame[px(cfg, 0, 2.5)]) != pal.ego  # box is ~2.1 m wide, not wider
    assert tuple(frame[px(cfg, 12.0, 0)]) == pal.vehicle
    assert tuple(frame[px(cfg, 0, 6.0)]) == pal.pedestrian
    # The ego sits on its lane: road colour just behind the ego box, on the lane centre.
    assert tuple(frame[px(cfg, -4.5, 0)]) in (MapColours().road, MapColours().junction, MapColours().marking)


def test_light_state_colours_and_stop_sign(cmap, ego, tmp_path):
    cfg = BEVConfig()
    pal = Palette()
    lines = [Line("C1_0", "traffic_light", *ahead(ego, 15.0, 0.0), ego.yaw, 1.6),
             Line("S_3", "stop", *ahead(ego, -15.0, 0.0), ego.yaw, 1.6)]
    bev = BEVRenderer(cmap, stop_lines=lines, config=cfg, cache_dir=tmp_path)
    red = bev.render(make_tick(ego, lights={"C1_0": "red"}))
    green = bev.render(make_tick(ego, lights={"C1_0": "green"}))
    assert tuple(red[px(cfg, 15.0, 0.0)]) == pal.light["red"]
    assert tuple(red[px(cfg, 15.0, 1.2)]) == pal.light["red"]  # the bar spans the lane
    assert tuple(green[px(cfg, 15.0, 0.0)]) == pal.light["green"]
    assert tuple(red[px(cfg, -15.0, 0.0)]) == pal.stop_sign
    unknown = bev.render(make_tick(ego, lights={}))  # no state known -> drawn as 'off'
    assert tuple(unknown[px(cfg, 15.0, 0.0)]) == pal.light["off"]
    # Two links of one lane (say left turn and straight) share the stop line: each gets half the bar.
    links = [Line("C1_1", "traffic_light", *ahead(ego, 15.0, 0.0), ego.yaw, 1.6),
             Line("C1_2", "traffic_light", *ahead(ego, 15.0, 0.0), ego.yaw, 1.6)]
    both = BEVRenderer(cmap, stop_lines=links, config=cfg, cache_dir=tmp_path).render(
        make_tick(ego, lights={"C1_1": "green", "C1_2": "red"}))
    assert tuple(both[px(cfg, 15.0, -1.0)]) == pal.light["green"]
    assert tuple(both[px(cfg, 15.0, 1.0)]) == pal.light["red"]


def test_route_events_and_hud(cmap, ego, tmp_path):
    cfg = BEVConfig()
    pal = Palette()
    dense = [RouteWaypoint(*ahead(ego, float(d), 0.0), 0.0, ego.yaw, RoadOption.LANEFOLLOW, 0, -1, float(d))
             for d in range(-30, 60)]
    route = Route("r", "grid_tls", [Keypoint(dense[0].x, dense[0].y)], dense)
    bev = BEVRenderer(cmap, route=route, config=cfg, cache_dir=tmp_path)
    ev = Event("collisions_vehicle", *ahead(ego, 0.0, -12.0))
    frame = bev.render(make_tick(ego), 33.3, [ev])
    assert tuple(frame[px(cfg, 25.0, 0.0)]) == pal.route  # ahead: still to drive
    assert tuple(frame[px(cfg, -20.0, 0.0)]) == pal.route_done  # behind: driven
    assert tuple(frame[px(cfg, 0.0, -12.0)]) == pal.infraction
    hud = frame[:30, :120].reshape(-1, 3).astype(int)
    assert ((hud == pal.hud_box).all(axis=1)).sum() > 1000  # the text box
    assert (hud.min(axis=1) > 150).sum() > 20  # bright (anti-aliased) text on it
    plain = BEVRenderer(cmap, route=route, config=BEVConfig(hud=False), cache_dir=tmp_path).render(make_tick(ego))
    assert not (plain[:30, :120].reshape(-1, 3) == pal.hud_box).all(axis=1).any()


def test_map_layer_is_built_once_and_cached_on_disk(cmap, tmp_path):
    from driving.render import map_layer

    map_layer._MEMORY_CACHE.clear()
    first = get_map_layer(cmap, 3.0, tmp_path)
    assert get_map_layer(cmap, 3.0, tmp_path) is first
    assert len(list(tmp_path.glob("*.png"))) == 1
    map_layer._MEMORY_CACHE.clear()
    again = get_map_layer(cmap, 3.0, tmp_path)  # read back from disk, identical raster
    assert again is not first and np.array_equal(again.image, first.image)
    # Lane centres are road-coloured in the layer.
    wps = [w for w in cmap.generate_waypoints(10.0) if not w.is_junction]
    uv = first.world_to_px(np.array([(w.transform.location.x, w.transform.location.y) for w in wps]))
    colours = {tuple(first.image[int(v), int(u)]) for u, v in uv}
    assert MapColours().road in colours and MapColours().background not in colours


def test_mp4_and_overview_are_written(cmap, ego, tmp_path):
    bev = BEVRenderer(cmap, config=BEVConfig(width=128, height=128), cache_dir=tmp_path)
    path = tmp_path / "videos" / "ep.mp4"
    with VideoWriter(path, fps=20) as video:
        for i in range(15):
            moved = ActorBox(0, "ego", *ahead(ego, 0.5 * i, 0.0), ego.yaw, 2.4, 1.05, 10.0)
            video.append(bev.render(make_tick(moved)))
    assert path.exists() and not list(path.parent.glob("*.part*"))
    assert count_frames(path) == 15
    cap = cv2.VideoCapture(str(path))
    ok, frame = cap.read()
    cap.release()
    assert ok and frame.shape == (128, 128, 3)
    with pytest.raises(ValueError, match="HxWx3"):
        VideoWriter(tmp_path / "bad.mp4").append(np.zeros((4, 4), np.uint8))

    dense = [RouteWaypoint(*ahead(ego, float(d), 0.0), 0.0, ego.yaw, RoadOption.LANEFOLLOW, 0, -1, float(d))
             for d in range(0, 40)]
    image = render_overview(bev.layer, Route("r", "grid_tls", [], dense), np.array([[ego.x, ego.y], [ego.x + 5, ego.y]]),
                            [Event("red_light", ego.x, ego.y)], max_size=400)
    assert max(image.shape[:2]) <= 400
    out = save_png(image, tmp_path / "ov" / "route.png")
    back = cv2.imread(str(out))
    assert back is not None and back.shape == image.shape
    assert (image.reshape(-1, 3) == Palette().route).all(axis=1).any()
