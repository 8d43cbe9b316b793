"""results.json: the leaderboard's keys, labels and value formats per version, and a lossless reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from driving.criteria import InfractionEvent
from driving.scoring import build_route_record
from leaderboard_eval.results import ResultsFileError, read_records, read_results, write_results

LABELS_2X = [
    "Avg. driving score", "Avg. route completion", "Avg. infraction penalty", "Collisions with pedestrians",
    "Collisions with vehicles", "Collisions with layout", "Red lights infractions", "Stop sign infractions",
    "Off-road infractions", "Route deviations", "Route timeouts", "Agent blocked",
    "Yield emergency vehicles infractions", "Scenario timeouts", "Min speed infractions",
]
KEYS_2X = {"collisions_layout", "collisions_pedestrian", "collisions_vehicle", "red_light", "stop_infraction",
           "outside_route_lanes", "min_speed_infractions", "yield_emergency_vehicle_infractions",
           "scenario_timeouts", "route_dev", "vehicle_blocked", "route_timeout"}
KEYS_1_0 = {"collisions_pedestrian", "collisions_vehicle", "collisions_layout", "red_light", "stop_infraction",
            "outside_route_lanes", "route_dev", "route_timeout", "vehicle_blocked"}


def _records(version: str):
    from driving.scoring import route_record_id

    crash = InfractionEvent("collisions_pedestrian", 3, 0.15, 1.0, 2.0, "Agent collided against object with "
                            "type=walker.pedestrian.sumo and id=7 at (x=1.0, y=2.0, z=0.0)", actor_id=7)
    blocked = InfractionEvent("vehicle_blocked", 9, 200.0, 5.0, 5.0, "Agent got blocked at (x=5.0, y=5.0, z=0.0)")
    return [
        build_route_record(route_record_id("0", 0, version), 0, [crash], 100.0, True, 812.5, 95.2, 3.1, version),
        build_route_record(route_record_id("1", 0, version), 1, [blocked], 37.5, False, 604.25, 200.0, 4.4, version),
    ]


@pytest.mark.parametrize("version", ["2.0", "2.1"])
def test_results_json_shape_2x(tmp_path: Path, version: str) -> None:
    path = tmp_path / "results.json"
    write_results(path, _records(version), version, sensors=[{"type": "sensor.speedometer", "id": "speed"}])
    data = json.loads(path.read_text())
    assert list(data) == ["_checkpoint", "entry_status", "eligible", "sensors", "values", "labels"]
    ckpt = data["_checkpoint"]
    assert list(ckpt) == ["global_record", "progress", "records"] and ckpt["progress"] == [2, 2]
    rec = ckpt["records"][1]
    assert list(rec) == ["index", "route_id", "status", "num_infractions", "infractions", "scores", "meta"]
    assert rec["route_id"] == "RouteScenario_1_rep0" and rec["status"] == "Failed - Agent got blocked"
    assert set(rec["infractions"]) == KEYS_2X and rec["num_infractions"] == 1
    assert list(rec["scores"]) == ["score_route", "score_penalty", "score_composed"]
    assert list(rec["meta"]) == ["route_length", "duration_game", "duration_system"]
    glob = ckpt["global_record"]
    assert list(glob) == ["index", "route_id", "status", "infractions", "scores_mean", "scores_std_dev", "meta"]
    assert set(glob["infractions"]) == KEYS_2X and list(glob["meta"]) == [
        "total_length", "duration_game", "duration_system", "exceptions"]
    assert data["labels"] == LABELS_2X and len(data["values"]) == 15
    assert data["values"][1] == str(round((100 + 37.5) / 2, 6))  # '68.75'
    assert data["entry_status"] == "Finished" and data["eligible"] is True
    assert data["sensors"] == ["carla_speedometer"]
    # the leaderboard's own tools split route ids like this (merge_statistics.py)
    assert int(rec["route_id"].split("_")[1]) == 1 and int(rec["route_id"].split("_rep")[-1]) == 0


def test_results_json_shape_1_0(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    write_results(path, _records("1.0"), "1.0")
    data = json.loads(path.read_text())
    rec = data["_checkpoint"]["records"][0]
    assert rec["route_id"] == "RouteScenario_0" and "num_infractions" not in rec
    assert set(rec["infractions"]) == KEYS_1_0 and rec["status"] == "Completed"
    glob = data["_checkpoint"]["global_record"]
    assert {"scores", "scores_std_dev", "infractions", "meta", "status"} <= set(glob)
    assert data["labels"] == LABELS_2X[:12] and all(v == f"{float(v):.3f}" for v in data["values"])
    # 1.0 marks a run whose routes failed by the agent's doing, but keeps it eligible
    assert data["entry_status"] == "Finished with agent errors" and data["eligible"] is True
    assert list(data) == sorted(data)  # 1.0 writes with sort_keys=True


@pytest.mark.parametrize("version", ["1.0", "2.0", "2.1"])
def test_round_trip(tmp_path: Path, version: str) -> None:
    path = tmp_path / "results.json"
    records = _records(version)
    written = write_results(path, records, version)
    assert read_results(path) == json.loads(json.dumps(written))
    back = read_records(path)
    assert [r.to_json() for r in back] == [r.to_json() for r in records]


def test_partial_checkpoint_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "partial.json"
    data = write_results(path, _records("2.0")[:1], "2.0", total_routes=3)
    assert data["_checkpoint"]["progress"] == [1, 3] and data["_checkpoint"]["global_record"] == {}
    assert data["entry_status"] == "Started" and data["values"] == [] and data["eligible"] is False
    broken = json.loads(path.read_text())
    del broken["_checkpoint"]["records"][0]["scores"]
    path.write_text(json.dumps(broken))
    with pytest.raises(ResultsFileError, match=r"partial.json.*records\[0\]\.scores"):
        read_results(path)
    path.write_text("{not json")
    with pytest.raises(ResultsFileError, match="partial.json"):
        read_results(path)
    with pytest.raises(ResultsFileError, match="missing.json"):
        read_results(tmp_path / "missing.json")
