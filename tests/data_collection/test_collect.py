"""collect(): real SUMO world, real HDF5 files, real worker processes (short routes, little traffic)."""

from __future__ import annotations

import json
import math

import pytest

from data_collection import DrivingDataset, read_episode
from data_collection.collect import CollectError, collect
from driving.actions import SPEED_LEVELS
from tests.data_collection.collect_support import (
    collect_config,
    frame_digest,
    short_routes,
    small_world,
    town_cache,  # noqa: F401 - a fixture
)

pytestmark = pytest.mark.usefixtures("town_cache")


def test_expert_collection_writes_one_complete_file_per_route_with_labels(tmp_path):
    routes = short_routes(2)
    summaries = collect(routes, collect_config(tmp_path))  # expert drives and labels, one worker process
    assert [s.route_id for s in summaries] == [r.id for r in routes]
    files = sorted(tmp_path.glob("*.h5"))
    assert [f.name for f in files] == sorted(f"{r.id}_rep0.h5" for r in routes)
    assert not list(tmp_path.glob("*.partial"))
    for s in summaries:
        assert s.path and not s.skipped and s.error == "", s
        episode = read_episode(s.path)
        frames = episode.frames()
        ticks = episode.summary["ticks"]
        assert len(frames) == ticks == s.frames > 50  # record_every=1: every tick
        ticks_seen = [f.scene.frame for f in frames]
        assert ticks_seen == list(range(ticks_seen[0], ticks_seen[0] + ticks))
        for f in frames:  # the expert drove: its action is the label, its control was applied
            assert f.expert is not None and f.expert.speed_level in SPEED_LEVELS
            assert f.driver == f.expert and f.expert_control == f.driver_control
        rc = [f.route_completion for f in frames]
        assert rc[0] == 0.0 and rc == sorted(rc) and rc[-1] > 90
        attrs = episode.attrs
        assert (attrs["town"], attrs["route_id"], attrs["repetition"], attrs["seed"]) == ("grid_tls", s.route_id, 0, 0)
        assert attrs["driver"] == attrs["labeller"] == "expert.ExpertDriver"
        assert attrs["config"]["record_every"] == 1 and attrs["version"] == "2.0"
        assert episode.summary["status"] == s.status and math.isclose(episode.summary["DS"], s.driving_score)
        assert len(episode.infractions()) >= s.infractions  # results.json counts a subset of the events
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["_checkpoint"]["progress"] == [2, 2]
    assert [r["route_id"] for r in results["_checkpoint"]["records"]] == [s.record_id for s in summaries]
    assert len(DrivingDataset(tmp_path)) == sum(s.frames for s in summaries)  # the folder loads as is


def test_record_every_and_dagger_labels(tmp_path):
    """A route follower drives, the expert labels every recorded frame, every 4th tick is recorded;
    the labeller never drives: the scenes are the ones recorded without any labeller."""
    routes = short_routes(1)
    common = {"driver": "route_follower", "record_every": 4, "backend": "inline"}
    (labelled,) = collect(routes, collect_config(tmp_path / "dagger", labeller="expert", **common))
    (unlabelled,) = collect(routes, collect_config(tmp_path / "plain", labeller=None, **common))
    episode = read_episode(labelled.path)
    frames = episode.frames()
    ticks = episode.summary["ticks"]
    assert len(frames) == math.ceil(ticks / 4) == labelled.frames > 10
    steps = {b.scene.frame - a.scene.frame for a, b in zip(frames, frames[1:], strict=False)}
    assert steps == {4}
    assert all(f.driver is None for f in frames)  # RouteFollower has no actions
    assert all(f.expert is not None and f.expert_control is not None for f in frames)
    assert any(f.expert_control != f.driver_control for f in frames)  # the labeller's own controller
    assert episode.attrs["driver"] == "driving.drivers.RouteFollower"
    assert episode.attrs["labeller"] == "expert.ExpertDriver"
    plain = read_episode(unlabelled.path)
    assert all(f.expert is None and f.expert_control is None for f in plain.frames())
    assert plain.scenes() == episode.scenes()
    assert [f.driver_control for f in plain.frames()] == [f.driver_control for f in frames]


def test_resume_skips_complete_files_and_redoes_partial_ones(tmp_path):
    routes = short_routes(2)
    cfg = collect_config(tmp_path, driver="route_follower", labeller=None)
    first = collect(routes, cfg)
    done, redo = (tmp_path / f"{r.id}_rep0.h5" for r in routes)
    kept = (done.stat().st_mtime_ns, done.read_bytes())
    digest, done_digest = frame_digest(redo), frame_digest(done)
    partial = redo.with_name(redo.name + ".partial")
    redo.rename(partial)  # as if the run had been killed while writing it
    second = collect(routes, cfg)
    assert (done.stat().st_mtime_ns, done.read_bytes()) == kept
    assert [s.skipped for s in second] == [True, False]
    assert not partial.exists() and frame_digest(redo) == digest
    assert [s.record for s in second][0] == first[0].record  # summary rebuilt from the file
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["_checkpoint"]["progress"] == [2, 2] and results["entry_status"] == "Finished"
    third = collect(routes, cfg)
    assert all(s.skipped for s in third)
    done.write_bytes(b"not an episode")  # damaged by hand: recorded again
    fourth = collect(routes, cfg)
    assert [s.skipped for s in fourth] == [False, True] and frame_digest(done) == done_digest
    with pytest.raises(CollectError, match="another config.*record_every"):
        collect(routes, collect_config(tmp_path, driver="route_follower", labeller=None, record_every=2))
    moved = [routes[1].__class__(routes[0].id, routes[1].town, routes[1].keypoints, routes[1].dense)]
    with pytest.raises(CollectError, match="another route"):
        collect(moved, cfg)


def test_two_workers_record_the_same_data_as_one(tmp_path):
    routes = short_routes(3)
    one = collect(routes, collect_config(tmp_path / "w1", workers=1))
    two = collect(routes, collect_config(tmp_path / "w2", workers=2))
    assert [s.status for s in one] == [s.status for s in two]
    for a, b in zip(one, two, strict=True):
        assert a.frames == b.frames > 0
        assert frame_digest(a.path) == frame_digest(b.path)


def test_a_crashing_worker_fails_only_its_route(tmp_path):
    routes = short_routes(3)
    crash = {"_target_": "tests.data_collection.collect_support.SegfaultOn", "route_ids": [routes[1].id]}
    summaries = collect(routes, collect_config(tmp_path, driver=crash, labeller=None, workers=2))
    ok1, crashed, ok2 = summaries
    assert crashed.status == "Failed - Simulation crashed" and crashed.path is None
    assert "SIGSEGV" in crashed.error
    assert ok1.path and ok2.path and ok1.frames > 0 and ok2.frames > 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix in (".h5", ".partial")) == sorted(
        [f"{routes[0].id}_rep0.h5", f"{routes[2].id}_rep0.h5"])
    results = json.loads((tmp_path / "results.json").read_text())
    assert [r["status"] for r in results["_checkpoint"]["records"]][1] == "Failed - Simulation crashed"


def test_on_step_sees_the_scene_the_driver_acted_on_once_per_tick():
    """The runner's hook: one call per tick, after the monitor's update, with the scene behind the
    control; an exception from it ends the route like a driver crash."""
    from driving.worlds.embedded import EmbeddedWorld
    from leaderboard_eval.runner import RouteJob, run_episode
    from tests.data_collection.collect_support import Pursuit

    class Seen(Pursuit):
        def reset(self, route):
            super().reset(route)
            self.steps = []

        def run_step(self, scene):
            control = super().run_step(scene)
            self.steps.append((scene, control))
            return control

    made: list[Seen] = []
    calls = []

    def make() -> Seen:
        made.append(Seen())
        return made[-1]

    def hook(scene, driver, control, tick, monitor, new_events):
        calls.append((scene, driver, control, tick, list(new_events), len(monitor.events)))

    (route,) = short_routes(1)
    with EmbeddedWorld(small_world()) as world:
        record, _ = run_episode(world, RouteJob(0, route, 0), make, "2.0", 0, on_step=hook)
        assert record.status in ("Completed", "Perfect")
        (driver,) = made
        assert len(calls) == len(driver.steps) > 50
        seen_events = 0
        for (scene, d, control, tick, new, n_events), (acted_on, applied) in zip(calls, driver.steps, strict=True):
            assert scene is acted_on and control is applied and d is driver
            assert tick.frame > scene.frame and tick.control == applied.clipped()
            seen_events += len(new)
            assert seen_events == n_events  # new_events are exactly the monitor's additions this tick

        def broken(*args):
            if len(calls) > 10:
                raise OSError("disk full")
            calls.append(args)

        calls.clear()
        record, _ = run_episode(world, RouteJob(0, route, 0), make, "2.0", 0, on_step=broken)
    assert record.status == "Failed - Agent crashed" and len(calls) == 11


def test_a_route_over_its_wall_time_limit_keeps_a_readable_file(tmp_path):
    (route,) = short_routes(1)
    (s,) = collect([route], collect_config(tmp_path, driver="route_follower", labeller="expert",
                                           wall_time_limit_s=0.4, backend="inline"))
    assert s.status == "Failed - Wall time limit exceeded" and s.path and s.frames > 0
    episode = read_episode(s.path)  # the alarm never lands inside a frame's write
    assert len(episode.frames()) == s.frames and episode.summary["status"] == s.status
