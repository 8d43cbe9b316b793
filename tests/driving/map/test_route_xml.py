"""Leaderboard route XML: both formats, exact round trips, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from driving.routes import RouteFileError, read_routes, write_routes
from driving.types import Keypoint, Route

LB10 = """<?xml version='1.0' encoding='utf-8'?>
<routes><route id="0" town="Town01">
  <weather cloudiness="30" precipitation="0" sun_altitude_angle="70"/>
  <waypoint x="338.7" y="226.75" z="0.0" pitch="0" roll="0" yaw="270"/>
  <waypoint x="321.9" y="194.6" z="0.0" pitch="0" roll="0" yaw="180"/>
</route></routes>"""

LB2X = """<routes><route id="0" town="Town12">
  <weathers><weather route_percentage="0" cloudiness="5"/><weather route_percentage="100" cloudiness="5"/></weathers>
  <waypoints><position x="983.5" y="5382.2" z="371"/><position x="824.2" y="5575.3" z="371"/></waypoints>
  <scenarios><scenario name="Accident_1" type="Accident"><trigger_point x="427.2" y="6086.8" z="359" yaw="144"/></scenario></scenarios>
</route></routes>"""


def _routes(keyframes: bool) -> list[Route]:
    weather = ({"keyframes": [{"route_percentage": 0.0, "cloudiness": 5.5}, {"route_percentage": 100.0,
                                                                             "cloudiness": 80.25}]}
               if keyframes else {"cloudiness": 30.0, "sun_altitude_angle": 70.0, "wetness": 0.123456789})
    scenarios = [
        {"name": "Jaywalker_1", "type": "DynamicObjectCrossing",
         "trigger_point": {"x": 12.5, "y": -40.125, "z": 0.0, "yaw": 90.0},
         "other_actor": [{"x": 1.0, "y": 2.0, "z": 0.0}, {"x": 3.0, "y": 4.0, "z": 0.0}],
         "distance": {"value": 40.0}, "blocker_model": {"value": "static.prop.vendingmachine"}},
    ]
    return [
        Route("0", "grid_tls", [Keypoint(338.7123456789, -226.75, 0.0, 270.0), Keypoint(321.9, 194.6, 0.5, -90.0),
                                Keypoint(1e-7, 3.0)], weather=weather, scenarios=scenarios),
        Route("route_7", "rand_mixed", [Keypoint(0.0, 0.0), Keypoint(10.0, 1.0 / 3.0)]),
    ]


@pytest.mark.parametrize(("fmt", "keyframes"), [("1.0", False), ("2.x", True), ("2.x", False)])
def test_round_trip_is_exact(tmp_path: Path, fmt: str, keyframes: bool) -> None:
    routes = _routes(keyframes)
    path = write_routes(routes, tmp_path / "routes.xml", fmt)
    back = read_routes(path)
    assert [r.id for r in back] == ["0", "route_7"]
    for orig, got in zip(routes, back, strict=True):
        assert got.town == orig.town and got.keypoints == orig.keypoints
        assert got.scenarios == orig.scenarios
        assert got.weather == orig.weather
    # writing what was read gives the same bytes
    again = write_routes(back, tmp_path / "again.xml", fmt)
    assert again.read_bytes() == path.read_bytes()


def test_format_markers(tmp_path: Path) -> None:
    routes = _routes(False)
    one = write_routes(routes, tmp_path / "a.xml", "1.0").read_text()
    two = write_routes(routes, tmp_path / "b.xml", "2.x").read_text()
    assert "<waypoint " in one and "<waypoints>" not in one
    assert "<waypoints>" in two and "<position " in two and "<waypoint " not in two and "<weathers>" in two
    assert two.count('route_percentage="0"') == 1 and two.count('route_percentage="100"') == 1


def test_reads_leaderboard_examples(tmp_path: Path) -> None:
    (tmp_path / "lb10.xml").write_text(LB10)
    (tmp_path / "lb2.xml").write_text(LB2X)
    r10 = read_routes(tmp_path / "lb10.xml")[0]
    assert (r10.id, r10.town) == ("0", "Town01")
    assert r10.keypoints[0] == Keypoint(338.7, 226.75, 0.0, 270.0)
    assert r10.weather == {"cloudiness": 30.0, "precipitation": 0.0, "sun_altitude_angle": 70.0}
    r2 = read_routes(tmp_path / "lb2.xml")[0]
    assert r2.keypoints[1] == Keypoint(824.2, 5575.3, 371.0)
    assert r2.weather == {"cloudiness": 5.0}  # the same weather at 0 % and 100 % is static
    assert r2.scenarios == [{"name": "Accident_1", "type": "Accident",
                             "trigger_point": {"x": 427.2, "y": 6086.8, "z": 359.0, "yaw": 144.0}}]


@pytest.mark.parametrize(("text", "expected"), [
    ("<routes><route", "not well-formed XML"),
    ("<scenarios/>", "root element is <scenarios>"),
    ("<routes/>", "no <route> elements"),
    ('<routes><route town="T"><waypoint x="1" y="2"/><waypoint x="1" y="2"/></route></routes>',
     "route #0: missing attribute 'id'"),
    ('<routes><route id="4"><waypoint x="1" y="2"/><waypoint x="1" y="2"/></route></routes>',
     "route '4': missing attribute 'town'"),
    ('<routes><route id="4" town="T"><waypoint x="1" y="2"/></route></routes>',
     "route '4': needs at least 2 <waypoint> keypoints, found 1"),
    ('<routes><route id="5" town="T"><waypoints><position x="1" y="2"/><position x="1" y="abc"/>'
     '</waypoints></route></routes>', "route '5': <position> #1 attribute 'y' is not a number ('abc')"),
    ('<routes><route id="6" town="T"><waypoint y="2"/><waypoint x="1" y="2"/></route></routes>',
     "route '6': <waypoint> #0 is missing attribute 'x'"),
    ('<routes><route id="1" town="T"><waypoint x="1" y="2"/><waypoint x="1" y="2"/></route>'
     '<route id="1" town="T"><waypoint x="1" y="2"/><waypoint x="1" y="2"/></route></routes>',
     "route id '1' appears more than once"),
])
def test_malformed_files_raise_one_clear_error(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "broken_routes.xml"
    path.write_text(text)
    with pytest.raises(RouteFileError) as info:
        read_routes(path)
    message = str(info.value)
    assert str(path) in message and expected in message and "\n" not in message


def test_missing_file_and_bad_format(tmp_path: Path) -> None:
    with pytest.raises(RouteFileError, match="nothere.xml: route file not found"):
        read_routes(tmp_path / "nothere.xml")
    with pytest.raises(ValueError, match="1.0, 2.x"):
        write_routes(_routes(False), tmp_path / "x.xml", "3.0")
