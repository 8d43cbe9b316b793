"""Shared driving fixtures: towns are built once per test session into a private cache directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from driving.towns import Town, get_town


@pytest.fixture(scope="session")
def grid_town(town_cache_dir: Path) -> Town:
    """4x4 grid, 2 lanes, traffic lights, sidewalks and crossings (built-in 'grid_tls')."""
    return get_town("grid_tls", town_cache_dir)


@pytest.fixture(scope="session")
def stop_town(town_cache_dir: Path) -> Town:
    """4x4 grid, 1 lane, priority_stop junctions (built-in 'grid_stop')."""
    return get_town("grid_stop", town_cache_dir)


@pytest.fixture(scope="session")
def allway_town(town_cache_dir: Path) -> Town:
    """3x3 grid, 1 lane, all-way stops (built-in 'grid_allway')."""
    return get_town("grid_allway", town_cache_dir)


@pytest.fixture(scope="session")
def spider_town(town_cache_dir: Path) -> Town:
    """Spider net, priority junctions (built-in 'spider_prio')."""
    return get_town("spider_prio", town_cache_dir)


@pytest.fixture(scope="session")
def rand_town(town_cache_dir: Path) -> Town:
    """Random net, 1-2 lanes, mixed priority / traffic-light junctions (built-in 'rand_mixed')."""
    return get_town("rand_mixed", town_cache_dir)


@pytest.fixture(scope="session")
def roundabout_town(town_cache_dir: Path) -> Town:
    """3x3 grid of one-lane roundabouts (built-in 'roundabouts')."""
    return get_town("roundabouts", town_cache_dir)


@pytest.fixture(scope="session")
def grid_map(grid_town: Town):
    """carla.Map of ``grid_town``."""
    return grid_town.load_map()
