"""backend=ray records the same data as the process backend (each Ray actor: its own process + world)."""

from __future__ import annotations

import pytest

from data_collection.collect import collect
from tests.data_collection.collect_support import (
    collect_config,
    frame_digest,
    short_routes,
    town_cache,  # noqa: F401 - a fixture
)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("town_cache")]


def test_ray_backend_equals_the_process_backend_and_survives_a_dead_actor(tmp_path):
    ray = pytest.importorskip("ray")
    routes = short_routes(3)
    dagger = {"driver": "route_follower", "labeller": "expert", "record_every": 2}
    processes = collect(routes, collect_config(tmp_path / "processes", workers=2, **dagger))
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        on_ray = collect(routes, collect_config(tmp_path / "ray", workers=2, backend="ray", **dagger))
        crash = {"_target_": "tests.data_collection.collect_support.SegfaultOn", "route_ids": [routes[0].id]}
        crashed = collect(routes, collect_config(tmp_path / "crash", driver=crash, labeller=None, workers=2,
                                                 backend="ray"))
    finally:
        ray.shutdown()
    assert [s.status for s in on_ray] == [s.status for s in processes]
    for a, b in zip(processes, on_ray, strict=True):
        assert b.path and not b.error and a.frames == b.frames > 0
        assert frame_digest(a.path) == frame_digest(b.path)
    assert not list((tmp_path / "ray").glob("*.partial"))
    assert [s.status == "Failed - Simulation crashed" for s in crashed] == [True, False, False]
    assert crashed[0].path is None and "Ray actor died" in crashed[0].error
    assert all(s.path and s.frames > 0 for s in crashed[1:])
    assert sorted(p.name for p in (tmp_path / "crash").glob("*.h5*")) == [f"{r.id}_rep0.h5" for r in routes[1:]]
