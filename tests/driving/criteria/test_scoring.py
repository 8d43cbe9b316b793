"""Infraction penalty, driving score and global statistics against HAND-COMPUTED leaderboard values.

The arithmetic in the comments follows the leaderboard's statistics_manager.py per version:
1.0 / 2.0 multiply factors (ped 0.5, veh 0.6, layout 0.65, red 0.7, stop 0.8, outside 1 - pct/100;
2.0 adds min speed 1 - 0.3 (1 - pct/100)); 2.1 uses prod(1 - outside%) / (1 + sum of weights
ped 1.0, veh 0.7, layout 0.6, red 0.4, stop 0.25, min speed 0.4 (1 - pct/100)).
"""

from __future__ import annotations

import math

import pytest

from driving.criteria import InfractionEvent, UnknownVersionError
from driving.scoring import (
    build_route_record,
    driving_score,
    global_record,
    global_values,
    infraction_penalty,
)


def ev(kind: str, message: str = "m", value: float | None = None) -> InfractionEvent:
    return InfractionEvent(kind=kind, frame=0, time=0.0, x=0.0, y=0.0, message=message, value=value)


# Route A: reaches the end with one of every fixed infraction, 10 % (100 m of 1000 m) outside its
# lanes and two failed min-speed checkpoints (80 % and 50 %).
EVENTS_A = [
    ev("collisions_pedestrian"), ev("collisions_vehicle"), ev("collisions_layout"), ev("red_light"),
    ev("stop_infraction"),
    ev("outside_route_lanes", "Agent went outside its route lanes for about 100.0 meters (10.0% of the completed route)", 10.0),
    ev("min_speed_infractions", "Average speed is 80.0% of the surrounding traffic's one", 80.0),
    ev("min_speed_infractions", "Average speed is 50.0% of the surrounding traffic's one", 50.0),
]
# Route B: deviated at 43.217 % with two vehicle collisions.
EVENTS_B = [ev("collisions_vehicle"), ev("collisions_vehicle"), ev("route_dev", "Agent deviated from the route at (x=1, y=2, z=0)")]

IP_A = {
    "1.0": 0.5 * 0.6 * 0.65 * 0.7 * 0.8 * 0.9,  # = 0.09828 (min speed does not exist in 1.0)
    "2.0": 0.5 * 0.6 * 0.65 * 0.7 * 0.8 * 0.9 * (1 - 0.3 * 0.2) * (1 - 0.3 * 0.5),  # = 0.09828 * 0.94 * 0.85 = 0.07852572
    "2.1": 0.9 / (1 + 1.0 + 0.7 + 0.6 + 0.4 + 0.25 + 0.4 * 0.2 + 0.4 * 0.5),  # = 0.9 / 4.23 = 0.2127659...
}
IP_B = {"1.0": 0.6 * 0.6, "2.0": 0.6 * 0.6, "2.1": 1 / (1 + 0.7 + 0.7)}  # 0.36, 0.36, 0.416666...


@pytest.mark.parametrize("version", ["1.0", "2.0", "2.1"])
def test_penalty_and_driving_score(version: str) -> None:
    assert infraction_penalty(EVENTS_A, version) == pytest.approx(IP_A[version], abs=1e-12)
    assert infraction_penalty(EVENTS_B, version) == pytest.approx(IP_B[version], abs=1e-12)
    assert infraction_penalty([], version) == 1.0
    assert driving_score(80.0, 0.5) == 40.0


def test_hand_values_spelled_out() -> None:
    # guards against an error shared by the table above and the code
    assert IP_A["1.0"] == pytest.approx(0.09828)
    assert IP_A["2.0"] == pytest.approx(0.07852572)
    assert IP_A["2.1"] == pytest.approx(0.21276595744680851)
    with pytest.raises(UnknownVersionError, match="3.0"):
        infraction_penalty([], "3.0")


def _records(version: str):
    a = build_route_record("RouteScenario_0_rep0", 0, EVENTS_A, 99.4, True, 1000.0, 120.0, 10.0, version)
    b = build_route_record("RouteScenario_1_rep0", 1, EVENTS_B, 43.217, False, 500.0, 60.0, 5.0, version)
    return a, b


def test_route_records_2_0() -> None:
    a, b = _records("2.0")
    assert a.status == "Completed" and a.scores == {
        "score_route": 100.0, "score_penalty": 0.078526, "score_composed": 7.852572}  # 100 * 0.07852572
    assert a.num_infractions == 8
    # RC rounded to 2 decimals by RouteCompletionTest: 43.22; DS = 43.22 * 0.36 = 15.5592
    assert b.status == "Failed - Agent deviated from the route"
    assert b.scores == {"score_route": 43.22, "score_penalty": 0.36, "score_composed": 15.5592}
    assert b.infractions["route_dev"] == ["Agent deviated from the route at (x=1, y=2, z=0)"]
    perfect = build_route_record("RouteScenario_2_rep0", 2, [], 100.0, True, 10.0, 1.0, 1.0, "2.0")
    assert perfect.status == "Perfect" and perfect.scores["score_composed"] == 100.0


def test_route_records_2_1_and_1_0() -> None:
    a, b = _records("2.1")
    assert a.scores == {"score_route": 100.0, "score_penalty": 0.212766, "score_composed": 21.276596}
    assert b.scores["score_penalty"] == 0.416667 and b.scores["score_composed"] == 18.008333  # 43.22 / 2.4
    a, b = _records("1.0")
    assert a.status == "Completed" and a.scores["score_composed"] == pytest.approx(9.828)
    # 1.0 keeps RC unrounded: 43.217 * 0.36 = 15.55812; no min-speed key in 1.0
    assert b.scores["score_route"] == 43.217 and b.scores["score_composed"] == pytest.approx(15.55812)
    assert "min_speed_infractions" not in a.infractions and a.num_infractions == 6
    timeout = build_route_record("RouteScenario_3", 3, [ev("route_timeout", "Route timeout.")], 50.0, False,
                                 10.0, 1.0, 1.0, "1.0", failure_message="Agent crashed")
    assert timeout.status == "Failed - Agent timed out"  # a timeout overrides the external failure
    assert timeout.infractions["route_timeout"] == ["Route timeout."]


def test_global_record_2_x() -> None:
    a, b = _records("2.0")
    g = global_record([a, b], "2.0")
    # km driven = 1.0 km * 100 % + 0.5 km * 43.22 % = 1.2161 km; rates = count / 1.2161
    km = 1.0 + 0.5 * 0.4322
    assert g["infractions"]["collisions_vehicle"] == round(3 / km, 3) == 2.467
    assert g["infractions"]["collisions_pedestrian"] == round(1 / km, 3) == 0.822
    assert g["infractions"]["min_speed_infractions"] == round(2 / km, 3) == 1.645
    assert g["infractions"]["route_dev"] == 0.822 and g["infractions"]["route_timeout"] == 0.0
    assert g["infractions"]["outside_route_lanes"] == 0.1  # km outside (100 m), not a rate
    assert g["scores_mean"] == {"score_composed": round((7.852572 + 15.5592) / 2, 6),
                                "score_route": 71.61, "score_penalty": round((0.078526 + 0.36) / 2, 6)}
    diff = 15.5592 - (7.852572 + 15.5592) / 2  # sample std of two values = |a - b| / sqrt(2)
    assert g["scores_std_dev"]["score_composed"] == round(math.sqrt(2 * diff**2), 3) == 5.449
    assert g["status"] == "Failed" and g["meta"]["exceptions"] == [["RouteScenario_1_rep0", 1, b.status]]
    assert g["meta"]["total_length"] == 1500.0
    values = global_values(g, "2.0")
    assert len(values) == 15 and values[0] == str(g["scores_mean"]["score_composed"]) and values[4] == "2.467"
    # failed routes count in the averages: a third route that never started halves nothing away
    zero = build_route_record("RouteScenario_2_rep0", 2, [], 0.0, False, 300.0, 0.0, 0.0, "2.0")
    g3 = global_record([a, b, zero], "2.0")
    assert g3["scores_mean"]["score_route"] == round((100 + 43.22 + 0) / 3, 6)


def test_global_record_1_0_sums_per_route_rates() -> None:
    a, b = _records("1.0")
    g = global_record([a, b], "1.0")
    # 1.0: sum over routes of count / (RC/100 * km): A 1/1.0, B 2/(0.43217*0.5)
    assert g["infractions"]["collisions_vehicle"] == pytest.approx(1 / 1.0 + 2 / (0.43217 * 0.5))
    assert g["infractions"]["outside_route_lanes"] == pytest.approx(1.0)  # one message per km, counted
    assert g["scores"]["score_composed"] == pytest.approx((9.828 + 15.55812) / 2)
    assert g["status"] == "Failed" and g["scores_std_dev"]["score_route"] == pytest.approx(
        math.sqrt(2 * ((100 - 43.217) / 2) ** 2))
    single = global_record([a], "1.0")
    assert single["scores_std_dev"] == {"score_route": "NaN", "score_penalty": "NaN", "score_composed": "NaN"}
    values = global_values(g, "1.0")
    assert len(values) == 12 and values[0] == f"{(9.828 + 15.55812) / 2:.3f}" == "12.693"
