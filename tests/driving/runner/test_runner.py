"""run_routes closed loop in the real embedded world (SUMO + carla.Map), scored by RouteMonitor."""

from __future__ import annotations

import json

import pytest

from driving.criteria import PARAMS
from driving.types import Route
from leaderboard_eval.runner import RunnerError, parse_subset, run_routes, select_routes
from tests.driving.runner.conftest import CrashOn, HangOn, Parked, Pursuit

LEADERBOARD_KEYS = {"_checkpoint", "entry_status", "eligible", "sensors", "values", "labels"}


def test_routes_complete_and_results_json_has_the_leaderboard_shape(short_routes, world_config, tmp_path):
    path = tmp_path / "results.json"
    results = run_routes(short_routes[:2], world_config, Pursuit, version="2.0", checkpoint_path=path,
                         progress=False)
    on_disk = json.loads(path.read_text())
    assert on_disk == json.loads(json.dumps(results))
    assert set(on_disk) == LEADERBOARD_KEYS
    ckpt = on_disk["_checkpoint"]
    assert ckpt["progress"] == [2, 2]
    assert [r["route_id"] for r in ckpt["records"]] == ["RouteScenario_0_rep0", "RouteScenario_1_rep0"]
    for rec in ckpt["records"]:
        assert rec["status"] in ("Completed", "Perfect"), rec
        assert rec["scores"]["score_route"] == 100.0
        assert set(rec["meta"]) == {"route_length", "duration_game", "duration_system"}
        assert 40 < rec["meta"]["route_length"] < 50
    assert on_disk["entry_status"] == "Finished" and on_disk["eligible"] is True
    assert len(on_disk["labels"]) == len(on_disk["values"]) == 15
    assert ckpt["global_record"]["scores_mean"]["score_route"] == 100.0


def test_crashing_driver_fails_its_route_and_the_next_one_runs(short_routes, world_config, tmp_path):
    seen = []
    results = run_routes(short_routes[:2], world_config, lambda: CrashOn({"0"}), checkpoint_path=tmp_path / "r.json",
                         progress=False, on_record=seen.append)
    first, second = results["_checkpoint"]["records"]
    assert first["status"] == "Failed - Agent crashed"
    assert [r.route_id for r in seen] == ["RouteScenario_0_rep0", "RouteScenario_1_rep0"]
    assert all(isinstance(r.events, list) for r in seen)
    assert first["scores"]["score_route"] < 100
    assert second["status"] in ("Completed", "Perfect")


def test_a_driver_that_never_moves_is_blocked(short_routes, world_config, tmp_path):
    assert PARAMS["2.0"].blocked_time == 180.0  # the default stays the leaderboard's rule
    results = run_routes(short_routes[:1], world_config, Parked, checkpoint_path=tmp_path / "r.json",
                         blocked_time_s=2.0, progress=False)
    (rec,) = results["_checkpoint"]["records"]
    assert rec["status"] == "Failed - Agent got blocked"
    assert len(rec["infractions"]["vehicle_blocked"]) == 1
    assert 2.0 < rec["meta"]["duration_game"] < 3.0


def test_a_hung_driver_hits_the_wall_time_limit_and_the_run_goes_on(short_routes, world_config, tmp_path):
    results = run_routes(short_routes[:2], world_config, lambda: HangOn({"0"}), checkpoint_path=tmp_path / "r.json",
                         wall_time_limit_s=1.5, progress=False)
    first, second = results["_checkpoint"]["records"]
    assert first["status"] == "Failed - Wall time limit exceeded"
    assert second["status"] in ("Completed", "Perfect")


def test_resume_skips_recorded_routes_and_keeps_their_records(short_routes, world_config, tmp_path):
    path = tmp_path / "results.json"
    run_routes(select_routes(short_routes[:2], "0"), world_config, Pursuit, checkpoint_path=path, progress=False)
    before = json.loads(path.read_text())["_checkpoint"]["records"][0]
    made: list[str] = []

    class Counting(Pursuit):
        def reset(self, route):
            made.append(route.id)
            super().reset(route)

    results = run_routes(short_routes[:2], world_config, Counting, checkpoint_path=path, resume=True,
                         progress=False)
    assert made == ["1"]
    records = results["_checkpoint"]["records"]
    assert records[0] == before
    assert [r["route_id"] for r in records] == ["RouteScenario_0_rep0", "RouteScenario_1_rep0"]
    assert results["_checkpoint"]["progress"] == [2, 2]
    made.clear()  # without resume everything runs again
    run_routes(short_routes[:1], world_config, Counting, checkpoint_path=path, progress=False)
    assert made == ["0"]


def test_ctrl_c_writes_results_so_far(short_routes, world_config, tmp_path):
    path = tmp_path / "results.json"
    with pytest.raises(KeyboardInterrupt):
        run_routes(short_routes[:2], world_config, lambda: CrashOn({"1"}, exc=KeyboardInterrupt),
                   checkpoint_path=path, progress=False)
    data = json.loads(path.read_text())
    assert data["_checkpoint"]["progress"] == [1, 2]
    assert data["entry_status"] == "Started" and data["eligible"] is False
    assert [r["route_id"] for r in data["_checkpoint"]["records"]] == ["RouteScenario_0_rep0"]


def test_repetitions_and_subsets(short_routes, tmp_path):
    assert parse_subset("0-4,7") == ["0", "1", "2", "3", "4", "7"]
    assert parse_subset(" 2 ,a-b") == ["2", "a-b"]
    with pytest.raises(RunnerError, match="start > end"):
        parse_subset("4-1")
    assert [r.id for r in select_routes(short_routes, "2,0")] == ["0", "2"]
    with pytest.raises(RunnerError, match="no route with id 9"):
        select_routes(short_routes, "0-1,9")
    named = [Route(f"grid_tls_0_{i}", r.town, r.keypoints, r.dense) for i, r in enumerate(short_routes)]
    assert [r.id for r in select_routes(named, "grid_tls_0_1")] == ["grid_tls_0_1"]
    assert [r.id for r in select_routes(named, "0,2")] == ["grid_tls_0_0", "grid_tls_0_2"]  # positions
    with pytest.raises(RunnerError, match="no route with id 3"):
        select_routes(named, "3")


def test_a_world_failure_is_a_simulation_crash_and_the_world_is_rebuilt(short_routes, world_config, tmp_path):
    from driving.worlds.embedded import EmbeddedWorld

    built: list[str] = []

    class Flaky(EmbeddedWorld):
        def step(self, control):
            if self._route_id == "0" and self.tick().frame >= 10:
                raise RuntimeError("simulator lost on purpose")
            return super().step(control)

        def reset(self, route, seed):
            self._route_id = route.id
            return super().reset(route, seed)

    def factory(town: str):
        built.append(town)
        return Flaky(world_config)

    path = tmp_path / "r.json"
    results = run_routes(short_routes[:2], world_config, Pursuit, checkpoint_path=path, world_factory=factory,
                         progress=False)
    first, second = results["_checkpoint"]["records"]
    assert first["status"] == "Failed - Simulation crashed"
    assert second["status"] in ("Completed", "Perfect")
    assert built == ["grid_tls", "grid_tls"]  # a fresh world after the crash
    assert results["entry_status"] == "Crashed"  # the leaderboard's entry status for a lost simulator
    made: list[str] = []

    class Counting(Pursuit):
        def reset(self, route):
            made.append(route.id)
            super().reset(route)

    run_routes(short_routes[:2], world_config, Counting, checkpoint_path=path, resume=True, progress=False)
    assert made == ["0"]  # resume re-runs the route the simulator lost


def test_driver_setup_failure_and_bad_control_end_only_their_route(short_routes, world_config, tmp_path):
    class BadReset(Pursuit):
        def reset(self, route):
            if route.id == "0":
                raise ValueError("cannot load my weights")
            super().reset(route)

    destroyed: list[str] = []

    class BadControl(Pursuit):
        def run_step(self, scene):
            return (0.5, 0.0) if self.route.id == "1" else super().run_step(scene)

        def destroy(self):  # the leaderboard's agent.destroy(), after every route
            destroyed.append(self.route.id)

    results = run_routes(short_routes[:2], world_config, BadReset, checkpoint_path=tmp_path / "a.json",
                         progress=False)
    assert [r["status"] for r in results["_checkpoint"]["records"]][0] == "Failed - Agent couldn't be set up"
    assert results["_checkpoint"]["records"][1]["status"] in ("Completed", "Perfect")
    results = run_routes(short_routes[:2], world_config, BadControl, checkpoint_path=tmp_path / "b.json",
                         progress=False)
    assert results["_checkpoint"]["records"][1]["status"] == "Failed - Agent crashed"
    assert destroyed == ["0", "1"]


def test_leaderboard_1_0_records_and_resume_with_repetitions(short_routes, world_config, tmp_path):
    path = tmp_path / "r.json"
    results = run_routes(short_routes[:1], world_config, Pursuit, version="1.0", checkpoint_path=path,
                         repetitions=2, progress=False)
    records = results["_checkpoint"]["records"]
    assert [r["route_id"] for r in records] == ["RouteScenario_0", "RouteScenario_0"]  # 1.0 ids have no rep
    assert [r["index"] for r in records] == [0, 1]
    assert len(results["labels"]) == 12 and "num_infractions" not in records[0]
    made: list[str] = []

    class Counting(Pursuit):
        def reset(self, route):
            made.append(route.id)
            super().reset(route)

    again = run_routes(short_routes[:1], world_config, Counting, version="1.0", checkpoint_path=path,
                       repetitions=2, resume=True, progress=False)
    assert made == [] and again["_checkpoint"]["records"] == records


def test_routes_in_two_towns_switch_worlds(short_routes, world_config, stop_town, tmp_path):
    from tests.driving.runner.conftest import lane_route

    other = lane_route(stop_town.load_map(), "9", 5)
    other = Route("9", "grid_stop", other.keypoints, other.dense)
    towns: list[str] = []

    def factory(town: str):
        from dataclasses import replace

        from driving.worlds.embedded import EmbeddedWorld

        towns.append(town)
        return EmbeddedWorld(replace(world_config, town=town))

    results = run_routes([short_routes[0], other], world_config, Pursuit, checkpoint_path=tmp_path / "r.json",
                         world_factory=factory, progress=False)
    assert towns == ["grid_tls", "grid_stop"]
    assert [r["meta"]["route_length"] for r in results["_checkpoint"]["records"]] == [44.0, 44.0]
    assert all(r["status"] != "Failed - Simulation crashed" for r in results["_checkpoint"]["records"])
