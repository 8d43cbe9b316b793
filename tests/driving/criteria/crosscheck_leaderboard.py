"""Cross-check our criteria and scoring against the leaderboard's own code (opt-in; needs its sources).

    python tests/driving/criteria/crosscheck_leaderboard.py --version 2.0 \\
        --scenario-runner /path/to/scenario_runner --leaderboard /path/to/leaderboard

The two paths are work trees of the matching branches (leaderboard-1.0 | leaderboard-2.0 / master |
leaderboard-2.1 of carla-simulator/scenario_runner and carla-simulator/leaderboard). Only
``atomic_criteria.py``, ``traffic_events.py`` and ``statistics_manager.py`` are loaded from them;
and ``timer.py`` (GameTime, the route timeouts); ``py_trees``, ``shapely`` and ``CarlaDataProvider``
are replaced by small stand-ins (the real ``carla.Map`` is used). Then:

1. criteria: the same synthetic tick streams (the scenarios of test_criteria.py, on the real
   grid_tls / grid_stop towns) go through ``RouteMonitor`` and through scenario_runner's criteria
   (RouteCompletion, OutsideRouteLanes, Collision fed with our OBB contacts, RunningRedLight,
   RunningStop, MinimumSpeedRoute, InRoute, Blocked, and the route timeout: 2.x RouteTimeoutBehavior,
   1.0 TimeOut of route_scenario's ``int(0.8 * length + 5)``); route completion, every event (kind, message,
   percentage) and the tick the route ends must agree (red-light / stop messages name CARLA actor ids
   in theirs, landmark ids in ours, so only their kinds are compared);
2. scoring: the leaderboard's ``StatisticsManager`` scores the same events; its results.json must equal
   ours key for key (2.x: in the same key order).

Exit status 0 when everything agrees, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import weakref
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

STUBS = {
    "py_trees/__init__.py": '''
import enum
class _Status(enum.Enum):
    RUNNING = "RUNNING"; SUCCESS = "SUCCESS"; FAILURE = "FAILURE"; INVALID = "INVALID"
class common:
    Status = _Status
class _Logger:
    def debug(self, *a, **k): pass
class behaviour:
    class Behaviour:
        def __init__(self, name=""):
            self.name = name; self.logger = _Logger(); self.status = _Status.INVALID
class _ClearingPolicy:
    ON_INITIALISE = 1
common.ClearingPolicy = _ClearingPolicy
class _BB:
    store = {}
    def get(self, k): return self.store.get(k)
    def set(self, k, v, overwrite=True): self.store[k] = v; return True
class blackboard:
    Blackboard = _BB
''',
    "shapely/__init__.py": "from . import geometry\n",
    "shapely/geometry.py": '''
from driving.geometry import segments_intersect
class _R:
    def __init__(self, empty): self.is_empty = empty
class LineString:
    def __init__(self, pts): self.p = [tuple(map(float, q)) for q in pts]
    def intersection(self, o): return _R(not segments_intersect(self.p[0], self.p[1], o.p[0], o.p[1]))
''',
    "agents/__init__.py": "",
    "agents/tools/__init__.py": "",
    "agents/tools/misc.py": "def get_speed(v): return 0.0\n",
    "dictor.py": '''
def dictor(data, path, default=None):
    cur = data
    for part in path.split('.'):
        if not isinstance(cur, dict) or part not in cur:
            return default
        cur = cur[part]
    return cur
''',
    "requests.py": "",
    "srunner/__init__.py": "",
    "srunner/scenariomanager/__init__.py": "",
    "srunner/scenariomanager/scenarioatomics/__init__.py": "",
    "srunner/scenariomanager/carla_data_provider.py": '''
class Actors(list):
    def filter(self, pattern):
        key = pattern.strip("*")
        return Actors([a for a in self if key in a.type_id])
class CarlaDataProvider:
    map = None; world = None; actors = Actors()
    @staticmethod
    def get_location(a): return a.get_location()
    @staticmethod
    def get_transform(a): return a.get_transform()
    @staticmethod
    def get_velocity(a): return abs(a.speed)
    @staticmethod
    def get_map(): return CarlaDataProvider.map
    @staticmethod
    def get_world(): return CarlaDataProvider.world
    @staticmethod
    def get_all_actors(): return CarlaDataProvider.actors
''',
    "leaderboard/__init__.py": "",
    "leaderboard/utils/__init__.py": "",
}
REAL = {
    "srunner/scenariomanager/scenarioatomics/atomic_criteria.py": "scenario-runner",
    "srunner/scenariomanager/traffic_events.py": "scenario-runner",
    "srunner/scenariomanager/timer.py": "scenario-runner",
    "leaderboard/utils/statistics_manager.py": "leaderboard",
    "leaderboard/utils/checkpoint_tools.py": "leaderboard",
}


def build_tree(sr: Path, lb: Path, into: Path) -> None:
    for rel, text in STUBS.items():
        (into / rel).parent.mkdir(parents=True, exist_ok=True)
        (into / rel).write_text(text)
    for rel, which in REAL.items():
        shutil.copy((sr if which == "scenario-runner" else lb) / rel, into / rel)


# ----------------------------------------------------------------------------- criteria
def crosscheck_criteria(version: str) -> int:
    import carla
    from srunner.scenariomanager.carla_data_provider import Actors, CarlaDataProvider
    from srunner.scenariomanager.scenarioatomics import atomic_criteria as ac
    from srunner.scenariomanager.timer import GameTime, TimeOut

    try:
        from srunner.scenariomanager.timer import RouteTimeoutBehavior
    except ImportError:  # 1.0 has none
        RouteTimeoutBehavior = None
    from srunner.scenariomanager.traffic_events import TrafficEventType as T

    from driving.criteria import PARAMS, RouteMonitor
    from driving.geometry import overlapping_actors
    from driving.signals import load_stop_lines
    from driving.towns import get_town
    from driving.types import ActorBox, RoadOption
    from tests.driving.criteria.conftest import EGO_HALF_LENGTH, drive, walk_route
    from tests.driving.criteria.conftest import Path as RoutePath

    class World:
        def get_actors(self):
            return CarlaDataProvider.actors

    class Ego:
        type_id, id, tick = "vehicle.lincoln.mkz_2020", 1, None

        @property
        def speed(self):
            return self.tick.ego.speed

        def get_location(self):
            return carla.Location(self.tick.ego.x, self.tick.ego.y, 0.0)

        def get_transform(self):
            return carla.Transform(self.get_location(), carla.Rotation(yaw=self.tick.ego.yaw))

        def get_velocity(self):
            a, v = math.radians(self.tick.ego.yaw), self.tick.ego.speed
            return carla.Vector3D(v * math.cos(a), v * math.sin(a), 0.0)

        @property
        def bounding_box(self):
            e = self.tick.ego
            return carla.BoundingBox(carla.Location(), carla.Vector3D(e.half_length, e.half_width, 0.8))

        def get_world(self):
            return World()

        def get_speed_limit(self):
            return 13.89 * 3.6  # km/h: the SUMO edges of the built-in towns

    class Background:
        type_id, attributes, speed = "vehicle.background", {"role_name": "background"}, 0.0

    class Sign:
        """A traffic light / stop actor; carla hands out fresh trigger volumes (transform() mutates)."""

        def __init__(self, type_id, actor_id, x, y, yaw, extent, lines=()):
            self.type_id, self.id, self.lines = type_id, actor_id, list(lines)
            self._pose, self._extent = (x, y, yaw), extent
            self.state = carla.TrafficLightState.Green

        @property
        def trigger_volume(self):
            return carla.BoundingBox(carla.Location(0, 0, 0), carla.Vector3D(*self._extent))

        def get_transform(self):
            x, y, yaw = self._pose
            return carla.Transform(carla.Location(x, y, 0.0), carla.Rotation(yaw=yaw))

        def get_location(self):
            return self.get_transform().location

    class Other:
        def __init__(self, box):
            self.id = box.id
            self.type_id = {"vehicle": "vehicle.sumo.car", "pedestrian": "walker.pedestrian.sumo",
                            "static": "static.prop.box"}[box.kind]

    class Contact:
        def __init__(self, box):
            self.other_actor = Other(box)

    names = {T.COLLISION_PEDESTRIAN: "collisions_pedestrian", T.COLLISION_VEHICLE: "collisions_vehicle",
             T.COLLISION_STATIC: "collisions_layout", T.TRAFFIC_LIGHT_INFRACTION: "red_light",
             T.STOP_INFRACTION: "stop_infraction", T.OUTSIDE_ROUTE_LANES_INFRACTION: "outside_route_lanes",
             T.ROUTE_DEVIATION: "route_dev", T.VEHICLE_BLOCKED: "vehicle_blocked"}
    if hasattr(T, "MIN_SPEED_INFRACTION"):
        names[T.MIN_SPEED_INFRACTION] = "min_speed_infractions"

    def signs_of(lines):
        groups: dict = {}
        for sl in lines:
            if sl.kind == "traffic_light":
                groups.setdefault((sl.tls_id, sl.road_id), {}).setdefault(sl.lane_id, sl)
        out = []
        for i, lanes in enumerate(groups.values()):
            ls = list(lanes.values())
            c, s = math.cos(math.radians(ls[0].yaw)), math.sin(math.radians(ls[0].yaw))
            cx, cy = sum(sl.x for sl in ls) / len(ls), sum(sl.y for sl in ls) / len(ls)
            out.append(Sign("traffic.traffic_light", 1000 + i, cx - c, cy - s, ls[0].yaw + 90,
                            (len(ls) * ls[0].half_width, 1.0, 1.0), ls))
        for i, sl in enumerate(x for x in lines if x.kind == "stop"):
            c, s = math.cos(math.radians(sl.yaw)), math.sin(math.radians(sl.yaw))
            out.append(Sign("traffic.stop", 2000 + i, sl.x - 1.5 * c, sl.y - 1.5 * s, sl.yaw, (1.5, sl.half_width, 1.0)))
        return out

    def theirs(town, route, lines, ticks, red_link):
        CarlaDataProvider.map, CarlaDataProvider.world = town.load_map(), World()
        ego = Ego()
        ego.tick = ticks[0]
        signs = signs_of(lines)
        background = [Background() for _ in range(3)]
        CarlaDataProvider.actors = Actors([*signs, *background])
        transforms = [(carla.Transform(carla.Location(w.x, w.y, w.z), carla.Rotation(yaw=w.yaw)), RoadOption.LANEFOLLOW)
                      for w in route.dense]
        if version == "1.0":
            locations = [(t.location, o) for t, o in transforms]
            collision = object.__new__(ac.CollisionTest)
            ac.Criterion.__init__(collision, "CollisionTest", ego, 0, None, False, False)
            collision.__dict__.update(_collision_sensor=None, other_actor=None, other_actor_type=None,
                                      registered_collisions=[], last_id=None, collision_time=None)
            crits = [ac.RouteCompletionTest(ego, route=locations), ac.OutsideRouteLanesTest(ego, route=locations),
                     collision, ac.RunningRedLightTest(ego), ac.RunningStopTest(ego),
                     ac.InRouteTest(ego, route=locations, offroad_max=30, terminate_on_failure=True),
                     ac.ActorSpeedAboveThresholdTest(ego, speed_threshold=0.1, below_threshold_max_time=180.0,
                                                     terminate_on_failure=True)]
        else:
            crits = [ac.RouteCompletionTest(ego, route=transforms), ac.OutsideRouteLanesTest(ego, route=transforms),
                     ac.CollisionTest(ego), ac.RunningRedLightTest(ego), ac.RunningStopTest(ego),
                     ac.MinimumSpeedRouteTest(ego, transforms, checkpoints=4),
                     ac.InRouteTest(ego, route=transforms, offroad_max=30, terminate_on_failure=True),
                     ac.ActorBlockedTest(ego, min_speed=0.1, max_time=180.0, terminate_on_failure=True)]
        GameTime.restart()
        ego.tick = ticks[0]
        if version == "1.0":
            length = sum(b[0].distance(a[0]) for a, b in zip(locations, locations[1:], strict=False))
            timeout = TimeOut(int(0.8 * length + 5.0))  # route_scenario._estimate_route_timeout
        else:
            timeout = RouteTimeoutBehavior(ego, transforms)
        timeout.initialise()
        end, success, timed_out = None, False, False
        for tick in ticks:
            ego.tick = tick
            GameTime._current_game_time, GameTime._last_frame = tick.time, tick.frame
            # the background vehicles BackgroundActivity would keep alive (CriteriaParams.background_reach)
            reach = PARAMS[version].background_reach(tick.ego.speed)
            speeds = [abs(a.speed) for a in tick.actors if a.kind == "vehicle"
                      and math.hypot(a.x - tick.ego.x, a.y - tick.ego.y) <= reach]
            for b in background:
                b.speed = sum(speeds) / len(speeds) if speeds else 0.0
            CarlaDataProvider.actors = Actors([*signs, *(background if speeds else [])])
            for sign in signs:
                red = red_link is not None and any(sl.id == red_link for sl in sign.lines) and \
                    tick.light_states.get(red_link) == "red"
                sign.state = carla.TrafficLightState.Red if red else carla.TrafficLightState.Green
            for box in overlapping_actors(tick.ego, tick.actors):  # sensor events come before the tree tick
                if version == "1.0":
                    ac.CollisionTest._count_collisions(weakref.ref(crits[2]), Contact(box))
                else:
                    crits[2]._count_collisions(Contact(box))
            failed = any(c.update().name == "FAILURE" for c in crits)
            timeout.update()
            timed_out = timeout.timeout
            if success or failed or timed_out:
                end = tick.frame
                break
            success = crits[0].test_status == "SUCCESS"
        for c in crits:
            c.terminate(None)
        rc, events = 0.0, []
        for c in crits:
            for e in (c.list_traffic_events if version == "1.0" else c.events):
                if e.get_type() == T.ROUTE_COMPLETION:
                    rc = (e.get_dict() or {}).get("route_completed", 0.0) if rc != 100.0 else rc
                elif e.get_type() == getattr(T, "ROUTE_COMPLETED", None):
                    rc = 100.0
                elif e.get_type() in names:
                    events.append((names[e.get_type()], e.get_message(), (e.get_dict() or {}).get("percentage")))
        if timed_out:
            events.append(("route_timeout", "Route timeout.", None))
        return rc, events, end

    def ours(town, route, lines, ticks):
        monitor = RouteMonitor(route, town, version=version, stop_lines=lines)
        end = None
        for tick in ticks:
            monitor.update(tick)
            if monitor.done:
                end = tick.frame
                break
        record = monitor.finalize(0.0)
        return record.scores["score_route"], [(e.kind, e.message, e.value) for e in record.events], end

    grid, stop_town = get_town("grid_tls"), get_town("grid_stop")
    grid_lines, stop_lines = load_stop_lines(grid), load_stop_lines(stop_town)
    a0 = next(s for s in grid_lines if s.id == "A0_0")
    tls = walk_route(grid.load_map(), a0, 40, 40)
    p = RoutePath(tls)
    st = next(s for s in stop_lines if s.id == "stop_A1B1")
    stop_route = walk_route(stop_town.load_map(), st, 40, 30)
    q = RoutePath(stop_route)
    at = q.distance_of(st.x, st.y)

    def props(path, spec):
        sizes = {"pedestrian": (0.3, 0.3), "vehicle": (2.2, 0.9), "static": (0.4, 0.4)}
        return [ActorBox(i, k, *path.pose(d)[:3], *sizes[k], speed=0.0) for i, k, d in spec]

    def phases(*steps):
        state = {"i": 0}

        def speed(t, d):
            while state["i"] < len(steps) - 1 and steps[state["i"]][1](d):
                state["i"] += 1
            return steps[state["i"]][0]
        return speed

    def glued(t, x, y, yaw):
        c, s = math.cos(math.radians(yaw)), math.sin(math.radians(yaw))
        return [ActorBox(21, "vehicle", x + 4.5 * c, y + 4.5 * s, yaw, 2.2, 0.9, 4.0)]

    x0, y0, yaw0 = p.pose(5.0)

    def rammer(t, x, y, yaw):
        back, c, s = 12.0 - 3.0 * t, math.cos(math.radians(yaw0)), math.sin(math.radians(yaw0))
        return [ActorBox(41, "vehicle", x0 - back * c, y0 - back * s, yaw0, 2.2, 0.9, 3.0)]

    stop_state: dict = {"since": None}
    stop_at = at - EGO_HALF_LENGTH - 0.3

    def proper_stop(t, d):
        if d < stop_at:
            return 6.0 if d < stop_at - 8 else 1.0
        if stop_state["since"] is None:
            stop_state["since"] = t
        return 0.0 if t - stop_state["since"] < 2.0 else 5.0

    crash = props(p, [(11, "pedestrian", 15.0), (12, "vehicle", 30.0), (13, "static", 70.0)])
    far = [ActorBox(50 + i, "vehicle", 1000.0 + 10 * i, 1000.0, 0.0, 2.2, 0.9, 10.0) for i in range(3)]
    wait_at = p.distance_of(a0.x, a0.y) - EGO_HALF_LENGTH - 1.0
    scenarios = [
        ("collisions", grid, tls, grid_lines, drive(p, lambda t, d: 6.0, actors=lambda *a: crash), None),
        ("same actor", grid, tls, grid_lines, drive(p, lambda t, d: 4.0, actors=glued, max_time=8.0), None),
        ("rammed", grid, tls, grid_lines, drive(p, lambda t, d: 0.0, start=5.0, actors=rammer, max_time=4.0), None),
        ("red light crawl", grid, tls, grid_lines, drive(p, lambda t, d: 1.5 if 30 < d < 50 else 8.0,
                                                         lights=lambda t: {"A0_0": "red"}), "A0_0"),
        ("red light wait", grid, tls, grid_lines, drive(p, lambda t, d: 0.0 if (d >= wait_at and t < 20) else 6.0,
                                                        lights=lambda t: {"A0_0": "red" if t < 20 else "green"}), "A0_0"),
        ("stop rolled", stop_town, stop_route, stop_lines, drive(q, lambda t, d: 0.5 if 25 < d < 45 else 7.0), None),
        ("stop kept", stop_town, stop_route, stop_lines, drive(q, proper_stop, start=0.013), None),
        ("stop twice", stop_town, stop_route, stop_lines, drive(q, phases(
            (3.0, lambda d: d > at + 4), (-1.0, lambda d: d < at - 8), (3.0, None)), max_time=60), None),
        ("stop approached", stop_town, stop_route, stop_lines, drive(q, phases(
            (3.0, lambda d: d > at - 10), (-2.0, lambda d: d < at - 35), (0.0, None)), start=5.0, max_time=40), None),
        ("outside lanes", grid, tls, grid_lines, drive(p, lambda t, d: 5.0, lateral=lambda d: -6.4 if 10 <= d < 30 else (
            4.5 if 60 <= d < 70 else 0.0)), None),
        ("deviation", grid, tls, grid_lines, drive(p, lambda t, d: 5.0, lateral=lambda d: 32.0 if d >= 20 else 0.0), None),
        ("drift", grid, tls, grid_lines, drive(p, lambda t, d: 5.0, lateral=lambda d: 18.0 if d >= 10 else 0.0), None),
        ("blocked", grid, tls, grid_lines, drive(p, lambda t, d: 0.0, max_time=200), None),
        ("crawl to a timeout", grid, tls, grid_lines, drive(p, lambda t, d: 0.2, max_time=500), None),
        ("completion", grid, tls, grid_lines, drive(p, lambda t, d: 5.0), None),
        ("min speed", grid, tls, grid_lines, drive(p, lambda t, d: 5.0, actors=lambda *a: far), None),
        ("wobble", grid, tls, grid_lines, drive(p, lambda t, d: 4.0 + 3 * math.sin(t), lateral=lambda d: 1.5 * math.sin(
            d / 7), yaw_offset=lambda d: 10 * math.cos(d / 7)), None),
    ]
    for gap in (4.0, 9.0):
        first, second = props(p, [(31, "static", 15.0), (32, "static", 15.0 + gap)])
        end_at = 15.0 + gap - 0.4 - EGO_HALF_LENGTH + 0.35
        scenarios.append((f"props {gap} m apart", grid, tls, grid_lines, drive(
            p, lambda t, d, e=end_at: 6.0 if d < 13.0 else (0.5 if d < e else 0.0),
            actors=lambda t, x, y, yaw, a=first, b=second: [a, b] if t < 2.28 else [b], max_time=30.0), None))

    def comparable(events):
        return sorted((k, "" if k in ("red_light", "stop_infraction") else m,
                       None if v is None else round(v, 4)) for k, m, v in events)

    bad = 0
    for name, town, route, lines, stream, red_link in scenarios:
        ticks = list(stream)
        a, b = ours(town, route, lines, ticks), theirs(town, route, lines, ticks, red_link)
        same_rc = a[0] == b[0] if version != "1.0" else abs(a[0] - b[0]) < 1e-6  # 1.0: unrounded, float32 in carla
        ok = same_rc and comparable(a[1]) == comparable(b[1]) and a[2] == b[2]
        bad += not ok
        print(f"{'ok  ' if ok else 'DIFF'} {name}: RC {a[0]} / {b[0]}, end {a[2]} / {b[2]}, events {[e[0] for e in a[1]]}")
        if not ok:
            print(f"     ours   {a[1]}\n     theirs {b[1]}")
    print(f"criteria {version}: {len(scenarios) - bad} of {len(scenarios)} scenarios agree")
    return bad


# ----------------------------------------------------------------------------- scoring
def crosscheck_scoring(version: str, workdir: Path) -> int:
    import leaderboard.utils.statistics_manager as sm
    from srunner.scenariomanager.traffic_events import TrafficEvent
    from srunner.scenariomanager.traffic_events import TrafficEventType as T

    from driving.criteria import InfractionEvent
    from driving.scoring import build_route_record
    from leaderboard_eval.results import results_dict

    kinds = {"collisions_pedestrian": T.COLLISION_PEDESTRIAN, "collisions_vehicle": T.COLLISION_VEHICLE,
             "collisions_layout": T.COLLISION_STATIC, "red_light": T.TRAFFIC_LIGHT_INFRACTION,
             "stop_infraction": T.STOP_INFRACTION, "outside_route_lanes": T.OUTSIDE_ROUTE_LANES_INFRACTION,
             "route_dev": T.ROUTE_DEVIATION, "vehicle_blocked": T.VEHICLE_BLOCKED}
    if version != "1.0":
        kinds["min_speed_infractions"] = T.MIN_SPEED_INFRACTION

    def ev(kind, message="m", value=None):
        return InfractionEvent(kind, 0, 0.0, 0.0, 0.0, message, value)

    def make_event(kind, message, data, frame=0):
        if version == "1.0":
            e = TrafficEvent(event_type=kind)
        else:
            e = TrafficEvent(event_type=kind, frame=frame)
        e.set_message(message)
        e.set_dict(data)
        return e

    class Node:
        def __init__(self, events):
            self.events = self.list_traffic_events = events

    class Point:
        def __init__(self, x):
            self.x, self.y, self.z = x, 0.0, 0.0

        def __sub__(self, other):
            return Length(self.x - other.x)

    class Length:
        def __init__(self, v):
            self.v = v

        def length(self):
            return abs(self.v)

    class Pose:
        def __init__(self, x):
            self.location = Point(x)

    class Timeout:
        timeout = False

    class Scenario:
        def __init__(self, nodes, length, timed_out):
            self.nodes, self.route = nodes, [(Pose(0.0), None), (Pose(length), None)]
            self.timeout_node = Timeout()
            self.timeout_node.timeout = timed_out

        def get_criteria(self):
            return self.nodes

    routes = [  # (RC, reached, length, events, timed out)
        (100.0, True, 1000.0, [ev("collisions_pedestrian", "p"), ev("collisions_vehicle", "v"), ev("collisions_layout", "l"),
                               ev("red_light", "r"), ev("stop_infraction", "s"),
                               ev("outside_route_lanes", "Agent went outside its route lanes for about 100.0 meters "
                                  "(10.0% of the completed route)", 10.0),
                               ev("min_speed_infractions", "Average speed is 80.0%", 80.0),
                               ev("min_speed_infractions", "Average speed is 50.0%", 50.0)], False),
        (43.217, False, 500.0, [ev("collisions_vehicle", "v1"), ev("collisions_vehicle", "v2"), ev("route_dev", "d")], False),
        (12.5, False, 250.0, [ev("collisions_layout", "l1")], True),
        (0.0, False, 300.0, [], False),
        (100.0, True, 80.0, [], False),
    ]
    out = str(workdir / "theirs.json")
    if version == "1.0":
        manager = sm.StatisticsManager()
        from leaderboard.utils.checkpoint_tools import create_default_json_msg, save_dict
        data = create_default_json_msg()
        data["_checkpoint"]["progress"] = [len(routes), len(routes)]
        save_dict(out, data)
        sm.StatisticsManager.save_sensors(["carla_speedometer"], out)
    else:
        manager = sm.StatisticsManager(out, str(workdir / "live.txt"))
        manager.save_progress(len(routes), len(routes))
        manager.save_sensors(["carla_speedometer"])
    records = []
    for i, (rc, reached, length, events, timed_out) in enumerate(routes):
        rid = f"RouteScenario_{i}" + ("" if version == "1.0" else "_rep0")
        if version == "1.0":
            nodes = [Node([make_event(T.ROUTE_COMPLETION, "rc", {"route_completed": rc})]
                          + ([make_event(T.ROUTE_COMPLETED, "done", {})] if reached else []))]
        else:
            nodes = [Node([make_event(T.ROUTE_COMPLETION, "rc", {"route_completed": 100.0 if reached else round(rc, 2)})])]
        nodes += [Node([make_event(kinds[e.kind], e.message, {"percentage": e.value} if e.value is not None else {})])
                  for e in events if e.kind in kinds]
        scenario = Scenario(nodes, length, timed_out)
        if version == "1.0":
            class Config:
                pass
            config = Config()
            config.index, config.trajectory = i, [Point(0.0), Point(length)]
            manager.set_route(rid, i)
            manager.set_scenario(scenario)
            manager.save_record(manager.compute_route_statistics(config, 3.0, 30.0, ""), i, out)
        else:
            manager.create_route_data(rid, i)
            manager.set_scenario(scenario)
            manager.compute_route_statistics(i, 3.0, 30.0, "")
        ours_events = list(events) + ([ev("route_timeout", "Route timeout.")] if timed_out else [])
        records.append(build_route_record(rid, i, ours_events, rc, reached, length, 30.0, 3.0, version))
    if version == "1.0":
        sm.StatisticsManager.save_global_record(manager.compute_global_statistics(len(routes)),
                                                ["carla_speedometer"], len(routes), out)
    else:
        manager.compute_global_statistics()
        manager.validate_and_write_statistics(True, False)
    theirs = json.loads(Path(out).read_text())
    ours = json.loads(json.dumps(results_dict(records, version, sensors=["sensor.speedometer"])))
    diffs: list[str] = []

    def compare(a, b, where):
        if isinstance(a, dict) and isinstance(b, dict):
            if version != "1.0" and list(a) != list(b):
                diffs.append(f"{where}: key order {list(a)} vs {list(b)}")
            for k in set(a) | set(b):
                if k not in a or k not in b:
                    diffs.append(f"{where}.{k}: only in {'ours' if k in a else 'theirs'}")
                else:
                    compare(a[k], b[k], f"{where}.{k}")
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                compare(x, y, f"{where}[{i}]")
        elif isinstance(a, float) or isinstance(b, float):
            if not (isinstance(a, int | float) and isinstance(b, int | float) and math.isclose(a, b, rel_tol=1e-9)):
                diffs.append(f"{where}: {a!r} vs {b!r}")
        elif a != b:
            diffs.append(f"{where}: {a!r} vs {b!r}")

    compare(ours, theirs, "results")
    for d in diffs:
        print("DIFF", d)
    print(f"scoring {version}: {'results.json identical' if not diffs else f'{len(diffs)} differences'}")
    return len(diffs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", required=True, choices=["1.0", "2.0", "2.1"])
    parser.add_argument("--scenario-runner", required=True, type=Path, help="scenario_runner work tree")
    parser.add_argument("--leaderboard", required=True, type=Path, help="leaderboard work tree")
    args = parser.parse_args()
    for root, rel in ((args.scenario_runner, "srunner/scenariomanager/scenarioatomics/atomic_criteria.py"),
                      (args.leaderboard, "leaderboard/utils/statistics_manager.py")):
        if not (root / rel).is_file():
            print(f"error: {root / rel} not found", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        build_tree(args.scenario_runner, args.leaderboard, tree)
        sys.path[:0] = [str(tree), str(REPO)]
        bad = crosscheck_criteria(args.version) + crosscheck_scoring(args.version, Path(tmp))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
