"""Fixtures for the embedded-world tests: real towns (SUMO + carla.Map), planned routes, worlds."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from driving.routes import generate_route_set
from driving.types import Route
from driving.worlds.embedded import EmbeddedWorld, EmbeddedWorldConfig


def routes_of(town_name: str, count: int = 8, seed: int = 0, min_length: float = 120.0,
              max_length: float = 220.0) -> list[Route]:
    from driving.towns import get_town

    route_set = generate_route_set(get_town(town_name), seed=seed, count=count, min_length=min_length,
                                   max_length=max_length)
    return sorted((r for split in route_set.values() for r in split), key=lambda r: r.id)


@pytest.fixture(scope="session")
def grid_routes() -> list[Route]:
    return routes_of("grid_tls")


@pytest.fixture(scope="session")
def stop_routes() -> list[Route]:
    return routes_of("grid_stop", count=10)


@pytest.fixture
def make_world() -> Iterator[Callable[..., EmbeddedWorld]]:
    """Factory for worlds (one libsumo simulation per process: each new world closes the last)."""
    worlds: list[EmbeddedWorld] = []

    def make(**overrides: object) -> EmbeddedWorld:
        config = EmbeddedWorldConfig(**{"town": "grid_tls", "n_vehicles": 30, "n_pedestrians": 15, **overrides})
        world = EmbeddedWorld(config)
        worlds.append(world)
        return world

    yield make
    for world in worlds:
        world.close()
