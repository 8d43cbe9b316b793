"""Fixtures for the storage tests: seeded synthetic frames that exercise every stored field.

Helpers are handed out as fixtures (test modules never import this file by name)."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

from data_collection.schema import FrameRecord
from data_collection.storage import EpisodeWriter
from driving.actions import SPEED_LEVELS, Action
from driving.criteria.events import InfractionEvent
from driving.scene import Actor, EgoState, RoutePoint, Scene, StopSign, TrafficLight
from driving.types import VehicleControl

ROAD_OPTIONS = ("LANEFOLLOW", "LEFT", "RIGHT", "STRAIGHT", "CHANGELANELEFT", "CHANGELANERIGHT", "VOID")


def _actor(rng: random.Random, kind: str, actor_id: int) -> Actor:
    u = rng.uniform
    return Actor(id=actor_id, kind=kind, x=u(-500, 500), y=u(-500, 500), yaw=u(-180, 180), ego_x=u(-50, 50),
                 ego_y=u(-50, 50), ego_yaw=u(-180, 180), speed=u(-2, 15), half_length=u(0.2, 3),
                 half_width=u(0.2, 1.2), distance=u(0, 50))


def _point(rng: random.Random) -> RoutePoint:
    u = rng.uniform
    return RoutePoint(x=u(-500, 500), y=u(-500, 500), ego_x=u(0, 100), ego_y=u(-5, 5), distance=u(0, 100),
                      road_option=rng.choice(ROAD_OPTIONS))


def make_scene(rng: random.Random, tick: int) -> Scene:
    """A random scene; lists are sometimes empty and optional fields sometimes None."""
    u = rng.uniform
    n_route = rng.choice([0, 1, 3, 7])
    return Scene(
        frame=tick,
        timestamp=tick * 0.05,
        ego=EgoState(x=u(-500, 500), y=u(-500, 500), yaw=u(-180, 180), speed=u(-1, 14), acceleration=u(-8, 3),
                     half_length=2.4, half_width=u(0.9, 1.1), steer=u(-1, 1)),
        route=[_point(rng) for _ in range(n_route)],
        target=None if rng.random() < 0.3 else _point(rng),
        vehicles=[_actor(rng, "vehicle", rng.randrange(1000)) for _ in range(rng.choice([0, 1, 4]))],
        pedestrians=[_actor(rng, "pedestrian", rng.randrange(1000)) for _ in range(rng.choice([0, 2]))],
        traffic_light=None if rng.random() < 0.4 else TrafficLight(
            id=f"tls{rng.randrange(5)}_{rng.randrange(3)}", state=rng.choice(["red", "yellow", "green", "off"]),
            distance_to_stop_line=u(-3, 60)),
        stop_signs=[StopSign(id=f"stop_{rng.randrange(9)}", distance_to_stop_line=u(0, 50),
                             cleared=rng.random() < 0.5) for _ in range(rng.choice([0, 0, 1, 2]))],
        speed_limit=rng.choice([8.33, 13.89]),
        in_junction=rng.random() < 0.2,
        distance_to_junction=None if rng.random() < 0.3 else u(0, 100),
        obstacles=[_actor(rng, "static", 5000 + i) for i in range(rng.choice([0, 0, 1]))],
    )


def make_frame(rng: random.Random, tick: int, labelled: bool = True) -> FrameRecord:
    def action() -> Action:
        return Action(speed_level=rng.choice(SPEED_LEVELS), steering_deg=rng.uniform(-90, 90),
                      target_speed=rng.uniform(0, 14))

    def control() -> VehicleControl:
        return VehicleControl(throttle=rng.random(), steer=rng.uniform(-1, 1), brake=rng.random(),
                              hand_brake=rng.random() < 0.1, reverse=rng.random() < 0.1,
                              manual_gear_shift=rng.random() < 0.1, gear=rng.randrange(-1, 6))

    return FrameRecord(
        scene=make_scene(rng, tick),
        route_completion=rng.uniform(0, 100),
        expert=action() if labelled else None,
        expert_control=control() if labelled else None,
        driver=None if rng.random() < 0.3 else action(),
        driver_control=control(),
    )


def synthetic_frames(n: int, seed: int = 0, start_tick: int = 0, stride: int = 1) -> list[FrameRecord]:
    rng = random.Random(seed)
    return [make_frame(rng, start_tick + i * stride, labelled=rng.random() < 0.8) for i in range(n)]


def infraction(kind: str, tick: int, **kw: object) -> InfractionEvent:
    fields: dict = {"time": tick * 0.05, "x": 1.5, "y": -2.25, "message": f"{kind} at tick {tick}"}
    fields.update(kw)
    return InfractionEvent(kind=kind, frame=tick, **fields)


PROVENANCE = {"town": "grid_tls", "route_id": "r7", "repetition": 1, "seed": 42, "driver": "expert",
              "labeller": "expert", "version": "2.0", "config": {"record_every": 1, "world": {"dt": 0.05}}}


@pytest.fixture
def make_frames() -> Callable[..., list[FrameRecord]]:
    """make_frames(n, seed=0, start_tick=0, stride=1): seeded frames, ~80% labelled."""
    return synthetic_frames


@pytest.fixture
def make_infraction() -> Callable[..., InfractionEvent]:
    """make_infraction(kind, tick, **fields): an InfractionEvent at simulation tick ``tick``."""
    return infraction


@pytest.fixture
def provenance() -> dict:
    return dict(PROVENANCE)


@pytest.fixture
def write_episode(tmp_path: Path) -> Callable[..., Path]:
    """write_episode(name, frames, infractions=(), summary=None, **attrs) -> the final path."""

    def write(name: str, frames: list[FrameRecord], infractions: list[InfractionEvent] = (),
              summary: dict | None = None, flush_every: int = 2048, **attrs: object) -> Path:
        writer = EpisodeWriter(tmp_path / name, {**PROVENANCE, **attrs}, flush_every=flush_every)
        for frame in frames:
            writer.append(frame)
        return writer.close(list(infractions), summary or {"DS": 50.0, "RC": 100.0, "IP": 0.5, "status": "done"})

    return write
