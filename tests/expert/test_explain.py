"""``expert.explain``: the MinimumSpeed attribution counts exactly what the criterion counts."""

from __future__ import annotations

import pytest

from driving.routes import generate_route_set
from driving.towns import get_town
from driving.worlds.embedded import EmbeddedWorld, EmbeddedWorldConfig
from expert import ExpertDriver
from expert.explain import KIND_MEANING, MinSpeedExplainer, failed_totals
from leaderboard_eval.runner import RouteJob, prepare_routes, run_episode


@pytest.fixture(scope="module")
def explained(town_cache_dir):
    """Two real test routes on grid_tls (traffic, lights), driven by the expert under 2.0."""
    routes = generate_route_set(get_town("grid_tls"), seed=0, count=10, min_length=150.0, max_length=250.0)["test"]
    routes = prepare_routes(routes[:2])
    world = EmbeddedWorld(EmbeddedWorldConfig(town="grid_tls", n_vehicles=60, n_pedestrians=10))
    explainer = MinSpeedExplainer()
    records = []
    try:
        for i, route in enumerate(routes):
            record, _ = run_episode(world, RouteJob(i, route, 0), ExpertDriver, "2.0", 0, on_step=explainer)
            records.append(record)
    finally:
        world.close()
    return records, explainer.rows()


def test_each_checkpoint_matches_the_criterion(explained) -> None:
    records, rows = explained
    assert [r["route_id"] for r in rows] == [rec.route_id for rec in records]
    for record, row in zip(records, rows, strict=True):
        scored = [cp for cp in row["checkpoints"] if cp["scored"] is not None]
        assert len(scored) == 4, row  # the route completed: four quarters scored
        for cp in scored:
            # the same ticks, the same sums: the same percentage the leaderboard criterion reported
            assert cp["percentage"] == pytest.approx(cp["scored"], abs=0.011), cp
        failures = [cp for cp in scored if cp["scored"] < 100.0]
        assert len(failures) == len(record.infractions.get("min_speed_infractions", []))
        assert row["driving_score"] == pytest.approx(record.driving_score, abs=0.01)


def test_ds_cost_is_the_score_regained_without_the_hazards_deficit(explained) -> None:
    _, rows = explained
    for row in rows:
        scored = [cp for cp in row["checkpoints"] if cp["scored"] is not None]
        failing = [cp for cp in scored if cp["scored"] < 100.0]
        in_failed = {k for cp in failing for k, v in cp["deficit_m"].items() if v > 0.0}
        costly = {k for cp in failing for k, v in cp["deficit_m"].items() if v >= 1.0}  # clear of rounding
        for kind, cost in row["ds_cost"].items():
            assert 0.0 <= cost <= 100.0 - row["driving_score"] + 1e-6, (kind, cost, row["driving_score"])
            if kind not in in_failed:
                assert cost == pytest.approx(0.0, abs=1e-6), (kind, cost)  # passing quarters stay passed
            elif kind in costly:
                assert cost > 0.0, (kind, cost)  # a failed quarter's shortfall, even part of it, costs points
        if not any(cp["scored"] < 100.0 for cp in scored):
            assert row["driving_score"] == pytest.approx(100.0)


def test_deficits_add_up_and_name_the_experts_hazards(explained) -> None:
    _, rows = explained
    for row in rows:
        for cp in row["checkpoints"]:
            total = sum(cp["deficit_m"].values())
            # a checkpoint fails exactly when the ego's mean is below the background's, i.e. total > 0
            expected = (cp["background_speed"] - cp["ego_speed"]) * cp["seconds"]
            assert total == pytest.approx(expected, abs=0.05 + 0.002 * abs(expected)), cp
            if cp["scored"] is not None:
                assert (cp["scored"] < 100.0) == (total > 0.0), cp
            assert set(cp["deficit_m"]) <= set(KIND_MEANING), cp["deficit_m"]
            assert sum(cp["slow_s"].values()) <= cp["seconds"] + 1e-6


def test_failed_totals_sum_the_failed_checkpoints_only() -> None:
    rows = [{"route_id": "r", "ds_cost": {"red_light": 6.0, "vehicle": 1.0}, "checkpoints": [
        {"scored": 80.0, "slow_s": {"red_light": 30.0}, "deficit_m": {"red_light": 200.0, "cruise": -50.0}},
        {"scored": 120.0, "slow_s": {"vehicle": 10.0}, "deficit_m": {"vehicle": 40.0, "cruise": -90.0}},
        {"scored": None, "slow_s": {"vehicle": 5.0}, "deficit_m": {"vehicle": 9.0}},
        {"scored": 95.0, "slow_s": {"vehicle": 2.0}, "deficit_m": {"vehicle": 20.0, "curve": 5.0}},
    ]}]
    failed, scored, totals = failed_totals(rows)
    assert (failed, scored) == (2, 3)
    assert totals == {"red_light": (30.0, 200.0, 6.0), "vehicle": (2.0, 20.0, 1.0), "curve": (0.0, 5.0, 0.0),
                      "cruise": (0.0, 0.0, 0.0)}
    assert list(totals) == ["red_light", "vehicle", "curve", "cruise"]
