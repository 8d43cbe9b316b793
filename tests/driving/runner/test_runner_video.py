"""Videos are written on request only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from driving.render import count_frames
from leaderboard_eval.runner import VIDEO_FRAME_STRIDE, run_routes
from tests.driving.runner.conftest import Pursuit

REPO = Path(__file__).resolve().parents[3]


def test_video_dir_gets_an_mp4_and_overview_per_route(short_routes, world_config, tmp_path):
    results = run_routes(short_routes[:1], world_config, Pursuit, checkpoint_path=tmp_path / "r.json",
                         video_dir=tmp_path / "videos", progress=False)
    (rec,) = results["_checkpoint"]["records"]
    mp4 = tmp_path / "videos" / "RouteScenario_0_rep0.mp4"
    png = tmp_path / "videos" / "RouteScenario_0_rep0.png"
    assert mp4.exists() and png.exists()
    ticks = round(rec["meta"]["duration_game"] / world_config.sumo_step_length)
    assert count_frames(mp4) == (ticks + VIDEO_FRAME_STRIDE - 1) // VIDEO_FRAME_STRIDE


def test_no_rendering_code_runs_without_a_video_dir(short_routes, grid_town, tmp_path):
    script = f"""
import json, sys
sys.path.insert(0, {str(REPO)!r})
from driving.worlds.embedded import EmbeddedWorldConfig
from leaderboard_eval.runner import VIDEO_FRAME_STRIDE, run_routes
from tests.driving.runner.conftest import Pursuit, lane_route
from driving.towns import get_town
route = lane_route(get_town("grid_tls").load_map(), "0", 7, 20)
run_routes([route], EmbeddedWorldConfig(n_vehicles=4, n_pedestrians=2), Pursuit,
           checkpoint_path={str(tmp_path / 'r.json')!r}, progress=False)
print(json.dumps(sorted(m for m in sys.modules if m.startswith(("driving.render", "imageio")))))
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
    assert not list(tmp_path.glob("*.mp4"))
