"""Output paths that can't be written: one line on stderr and exit 2 before anything runs (CLI);
a video that fails while a route runs is turned off for that route, which goes on and scores the same."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from driving.routes import generate_route_set, write_routes
from leaderboard_eval.runner import RunnerError, run_routes
from tests.driving.runner.conftest import Pursuit, assert_one_line_error, cli


@pytest.fixture(scope="module")
def route_file(grid_town, tmp_path_factory) -> Path:
    """Three short generated grid_tls routes in a 2.x route file."""
    sets = generate_route_set(grid_town, seed=0, count=3, min_length=40, max_length=80)
    path = tmp_path_factory.mktemp("routes") / "routes.xml"
    write_routes([r for split in sets.values() for r in split], path)
    return path


def test_checkpoint_that_is_a_directory(route_file, tmp_path):
    out = cli("--routes", str(route_file), "--checkpoint", str(tmp_path), "--quiet")
    assert_one_line_error(out, str(tmp_path), "is a directory")
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_under_a_file(route_file, tmp_path):
    out = cli("--routes", str(route_file), "--checkpoint", "/dev/null/x.json", "--quiet")
    assert_one_line_error(out, "/dev/null/x.json", "not a directory")
    blocker = tmp_path / "plain"
    blocker.write_text("")
    out = cli("--routes", str(route_file), "--checkpoint", str(blocker / "deeper" / "r.json"), "--quiet")
    assert_one_line_error(out, str(blocker / "deeper" / "r.json"), "not a directory")


def test_video_dir_that_is_a_file(route_file, tmp_path):
    blocker = tmp_path / "videos"
    blocker.write_text("not a folder")
    ckpt = tmp_path / "r.json"
    out = cli("--routes", str(route_file), "--checkpoint", str(ckpt), "--video-dir", str(blocker), "--quiet")
    assert_one_line_error(out, str(blocker), "not a directory")
    assert not ckpt.exists() and blocker.read_text() == "not a folder"


def test_missing_output_folders_are_created(route_file, tmp_path):
    ckpt = tmp_path / "new" / "deeper" / "r.json"
    videos = tmp_path / "v" / "w"
    out = cli("--routes", str(route_file), "--routes-subset", "0", "--checkpoint", str(ckpt), "--quiet",
              "--video-dir", str(videos), "--blocked-time", "10", "world.n_vehicles=2", "world.n_pedestrians=0")
    assert out.returncode == 0, out.stderr[-2000:]
    assert ckpt.is_file() and len(list(videos.glob("*.mp4"))) == 1


def test_run_routes_refuses_a_directory_checkpoint(short_routes, world_config, tmp_path):
    with pytest.raises(RunnerError, match="is a directory"):
        run_routes(short_routes[:1], world_config, Pursuit, checkpoint_path=tmp_path, progress=False)


def test_a_failing_video_ends_neither_the_route_nor_the_run(short_routes, world_config, tmp_path, monkeypatch,
                                                              caplog):
    plain = run_routes(short_routes[:2], world_config, Pursuit, checkpoint_path=tmp_path / "plain.json",
                       progress=False)

    # Route 0: the video folder is a file (the writer's mkdir fails on the first frame).
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    with caplog.at_level(logging.WARNING, logger="leaderboard_eval.runner"):
        broken = run_routes(short_routes[:1], world_config, Pursuit, checkpoint_path=tmp_path / "a.json",
                            video_dir=blocker, progress=False)
    warnings = [r for r in caplog.records if "video" in r.getMessage()]
    assert len(warnings) == 1 and "RouteScenario_0_rep0" in warnings[0].getMessage(), caplog.text

    # Mid-route: rendering raises from the 6th frame on, on every route; each route warns once.
    from driving.render import BEVRenderer

    real_render = BEVRenderer.render
    calls = [0]

    def flaky(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] % 1000 > 5:
            raise RuntimeError("render bug on purpose")
        return real_render(self, *args, **kwargs)

    def next_route(*_args, **_kwargs):
        calls[0] = 1000 * (calls[0] // 1000 + 1)

    monkeypatch.setattr(BEVRenderer, "render", flaky)
    monkeypatch.setattr(BEVRenderer, "set_route", lambda self, route, _real=BEVRenderer.set_route: (
        next_route(), _real(self, route))[1])
    caplog.clear()
    videos = tmp_path / "videos"
    with caplog.at_level(logging.WARNING, logger="leaderboard_eval.runner"):
        mid = run_routes(short_routes[:2], world_config, Pursuit, checkpoint_path=tmp_path / "b.json",
                         video_dir=videos, progress=False)
    warnings = [r.getMessage() for r in caplog.records if "video" in r.getMessage()]
    assert len(warnings) == 2 and "render bug on purpose" in warnings[0], caplog.text
    assert not list(videos.glob("*.mp4")) and not list(videos.glob("*.part.mp4"))
    assert not list(videos.glob("*.png"))

    def scores(results):
        return [(r["status"], r["scores"], r["infractions"]) for r in results["_checkpoint"]["records"]]

    assert scores(broken) == scores(plain)[:1]
    assert scores(mid) == scores(plain)
