"""Shared pieces of the collection tests (test_collect*.py): short real routes, a private town
cache that worker processes inherit, drivers that misbehave on purpose, frame-data digests."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from driving.types import Route, VehicleControl
from driving.worlds.embedded import EmbeddedWorldConfig

REPO = Path(__file__).resolve().parents[2]
TOWN = "grid_tls"
ROUTE_ARGS = ["--town", TOWN, "routes.min_length=40", "routes.max_length=80", "world.n_vehicles=6",
              "world.n_pedestrians=2"]  # the CLI's short generated routes


@pytest.fixture(scope="session")
def town_cache(town_cache_dir: Path) -> Path:
    """The session's town cache (LANGPROP_DRIVE_CACHE, inherited by worker processes spawned later)
    with the test town already built."""
    from driving.towns import get_town

    get_town(TOWN)
    return town_cache_dir


def short_routes(count: int, seed: int = 0) -> list[Route]:
    """``count`` generated routes of 40-80 m in grid_tls (route i depends only on (seed, i))."""
    from driving.routes import generate_route_set
    from driving.towns import get_town

    sets = generate_route_set(get_town(TOWN), seed=seed, count=count, min_length=40.0, max_length=80.0,
                              splits={"all": 1.0})
    return sets["all"]


def small_world() -> EmbeddedWorldConfig:
    return EmbeddedWorldConfig(town=TOWN, n_vehicles=6, n_pedestrians=2)


def collect_config(out: str | Path, **overrides) -> Any:
    """A ``CollectConfig`` for tests: small world, no progress bars, a wall-time safety net."""
    from data_collection.collect import CollectConfig

    base = {"out_dir": out, "world": small_world(), "progress": False, "wall_time_limit_s": 120.0}
    return CollectConfig(**{**base, **overrides})


def frame_digest(path: str | Path) -> str:
    """A hash of everything recorded per frame (frames, list tables, infractions, vocabularies)."""
    from data_collection.storage import read_raw

    raw = read_raw(path)
    h = hashlib.sha256()
    tables = {"frames": raw.frames, "infractions": raw.infractions, **{f"lists/{k}": v for k, v in raw.lists.items()}}
    for name in sorted(tables):
        for column in sorted(tables[name]):
            h.update(f"{name}/{column}".encode())
            h.update(np.ascontiguousarray(tables[name][column]).tobytes())
    h.update(repr(sorted((t, sorted(c.items())) for t, c in raw.vocab.items())).encode())
    return h.hexdigest()


def cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """``python -m data_collection`` as a user runs it."""
    return subprocess.run([sys.executable, "-m", "data_collection", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env=cli_env())


def cli_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


class Pursuit:
    """A minimal pure-pursuit driver (not an ActionDriver): 6 m/s on scene.target."""

    def reset(self, route: Route) -> None:
        self.route = route

    def run_step(self, scene) -> VehicleControl:
        import math

        target = scene.target
        if target is None:
            return VehicleControl(throttle=0.3)
        steer = math.degrees(math.atan2(target.ego_y, target.ego_x)) / 40.0
        return VehicleControl(throttle=0.6 if scene.ego.speed < 6.0 else 0.0, steer=max(-1.0, min(1.0, steer)))


class SegfaultOn(Pursuit):
    """Kills its own process with SIGSEGV after a few steps on the routes named (a crashing world)."""

    def __init__(self, route_ids: list[str], after_steps: int = 30) -> None:
        self.ids, self.after, self.steps = set(route_ids), after_steps, 0

    def run_step(self, scene) -> VehicleControl:
        self.steps += 1
        if self.route.id in self.ids and self.steps > self.after:
            os.kill(os.getpid(), signal.SIGSEGV)
        return super().run_step(scene)
