"""Determinism across processes: another interpreter (other hash seed) replays the same episode."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

EPISODE = """
import dataclasses, hashlib, json, math
from driving.routes import generate_route_set
from driving.towns import get_town
from driving.types import VehicleControl
from driving.worlds.embedded import EmbeddedWorld, EmbeddedWorldConfig
town = get_town("grid_tls")
route = sorted((r for s in generate_route_set(town, seed=0, count=3, min_length=120.0,
                max_length=220.0).values() for r in s), key=lambda r: r.id)[0]
digest = hashlib.sha256()
with EmbeddedWorld(EmbeddedWorldConfig(town="grid_tls", n_vehicles=30, n_pedestrians=15, jaywalkers=1)) as world:
    world.reset(route, seed=5)
    for i in range(120):
        scene = world.step(VehicleControl(throttle=0.5, steer=0.05 * math.sin(i / 10)))
        digest.update(json.dumps([dataclasses.asdict(world.tick()), scene.to_dict()], sort_keys=True).encode())
print(digest.hexdigest())
"""


def run_episode(hash_seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", EPISODE], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=240, check=True)
    return out.stdout.strip().splitlines()[-1]


def test_episode_is_identical_in_another_process_with_another_hash_seed() -> None:
    assert run_episode("1") == run_episode("12345")
