"""Long: every built-in town, default traffic, the leaderboard's own rules, with videos."""

from __future__ import annotations

import pytest

from driving.drivers import RouteFollower
from driving.render import count_frames
from driving.routes import generate_route_set
from driving.towns import BUILTIN_TOWNS, get_town
from driving.worlds.embedded import EmbeddedWorldConfig
from leaderboard_eval.runner import run_routes


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_route_follower_on_every_builtin_town(town_cache_dir, tmp_path):
    routes = []
    for name in sorted(BUILTIN_TOWNS):
        sets = generate_route_set(get_town(name), seed=11, count=1, min_length=150.0, max_length=300.0)
        routes += [r for split in sets.values() for r in split][:1]
    results = run_routes(routes, EmbeddedWorldConfig(), RouteFollower, checkpoint_path=tmp_path / "r.json",
                         video_dir=tmp_path / "videos", progress=False)
    records = results["_checkpoint"]["records"]
    assert len(records) == len(BUILTIN_TOWNS) and results["entry_status"] == "Finished"
    for rec in records:
        assert not rec["status"].endswith(("Simulation crashed", "Agent crashed", "Wall time limit exceeded")), rec
        mp4 = tmp_path / "videos" / f"{rec['route_id']}.mp4"
        assert count_frames(mp4) > 0 and mp4.with_suffix(".png").exists()
    assert sum(r["scores"]["score_route"] for r in records) / len(records) > 50.0
