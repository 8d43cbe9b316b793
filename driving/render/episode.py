"""One episode on film: a BEV MP4 (every ``stride``-th tick) and an overview PNG of the route driven."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from driving.render.bev import BEVRenderer, EventLike
from driving.render.overview import render_overview, save_png
from driving.render.video import VideoWriter
from driving.types import Route, WorldTick


class EpisodeRecorder:
    """Writes ``<stem>.mp4`` while the episode runs and ``<stem>.png`` (overview) when it closes.

    ``renderer`` is reused across episodes of one town (its map layer is the expensive part).
    """

    def __init__(self, stem: str | Path, renderer: BEVRenderer, route: Route, dt: float = 0.05,
                 stride: int = 2) -> None:
        self.stem = Path(stem)
        self.route = route
        self.bev = renderer
        self.bev.set_route(route)
        self.stride = max(1, int(stride))
        self.video = VideoWriter(self.stem.with_suffix(".mp4"), fps=1.0 / (dt * self.stride))
        self.trajectory: list[tuple[float, float]] = []
        self._ticks = 0
        self._closed = False

    def add(self, tick: WorldTick, route_completion: float | None = None, events: Sequence[EventLike] = ()) -> None:
        self.trajectory.append((tick.ego.x, tick.ego.y))
        if self._ticks % self.stride == 0:
            self.video.append(self.bev.render(tick, route_completion, events))
        self._ticks += 1

    def abort(self) -> None:
        """Give up filming this episode (after a failure): no MP4, no overview; idempotent."""
        self._closed = True
        self.video.abort()

    def close(self, events: Sequence[EventLike] = ()) -> None:
        """Finish the MP4 and write the overview with ``events`` marked; idempotent."""
        if self._closed:
            return
        self._closed = True
        self.video.close()
        image = render_overview(self.bev.layer, self.route, np.array(self.trajectory).reshape(-1, 2), events)
        save_png(image, self.stem.with_suffix(".png"))
