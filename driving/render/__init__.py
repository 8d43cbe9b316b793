"""Bird's-eye-view rendering: cached static map layer, ego-centred frames, overviews, MP4 videos.

Nothing here is imported by the world or the runner unless a video/overview is requested.
"""

from driving.render.bev import BEVConfig, BEVRenderer, Palette, oriented_box_corners
from driving.render.episode import EpisodeRecorder
from driving.render.map_layer import MapLayer, build_map_layer, get_map_layer
from driving.render.overview import render_overview, save_png
from driving.render.video import VideoWriter, count_frames

__all__ = [
    "BEVConfig", "BEVRenderer", "EpisodeRecorder", "MapLayer", "Palette", "VideoWriter", "build_map_layer", "count_frames",
    "get_map_layer", "oriented_box_corners", "render_overview", "save_png",
]
