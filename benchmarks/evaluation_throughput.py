"""Policy × sample evaluations per second through the sandbox, against the two bounds that matter.

(a) **bare**: the same compiled function called in-process in a plain loop — the ceiling; the sandbox
    pays for copying inputs per call, process isolation and result transport.
(b) **exec-per-call**: what the reference LangProp system did — exec the policy source (module-level
    imports, constants, helper definitions) and then call it, on every call.

Why this workload is representative: it is a driving policy shaped like the best one the LangProp
paper reports (inflate actor boxes, project actors into the ego frame, stopping distance from speed,
STOP for a red light / stop sign / actor in the corridor, steer by atan2 to the target point), over a
privileged scene with ~12 actors — ~110 lines of LLM-style code with imports, constants and helpers
at module level, and 50-100 µs per call. Re-running that module on every call (compiling it, binding
imports, building helpers) is what made the reference's evaluation slow; a per-call cost of a few tens
of µs is what the trainer actually pays for its 10^4-10^5 calls per update.

Prints as its last lines ``ratio_vs_bare=<x>`` (sandbox evals/s per worker over bare evals/s, i.e. per
core) and ``ratio_vs_exec_per_call=<y>`` (sandbox evals/s over exec-per-call evals/s).
Targets: >= 0.5 and >= 20. Run: ``python benchmarks/evaluation_throughput.py [--workers N]``.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from langprop.sandbox import SandboxLimits, SandboxPool  # noqa: E402

log = logging.getLogger("evaluation_throughput")

POLICY = '''
import math
from collections import namedtuple
from typing import Any

import numpy as np

MOVE, SLOW, STOP = "MOVE", "SLOW", "STOP"
SAFETY_MARGIN_M = {margin}
COMFORT_DECEL = 0.7
MIN_GAP_M = 2.0
CORRIDOR_HALF_WIDTH_M = 1.6
RED_STATES = ("red", "yellow")
Box = namedtuple("Box", "x y half_length half_width yaw")


def stopping_distance(speed: float, half_length: float) -> float:
    """Distance needed to stop from ``speed`` with a comfortable deceleration, plus margins."""
    v = max(speed - 0.1, 0.0)
    return v * v / (2 * COMFORT_DECEL) + MIN_GAP_M + half_length


def inflate(actor: dict[str, Any]) -> Box:
    return Box(actor["ego_x"], actor["ego_y"], actor["half_length"] + SAFETY_MARGIN_M,
               actor["half_width"] + SAFETY_MARGIN_M, math.radians(actor["ego_yaw"]))


def corners(box: Box) -> np.ndarray:
    c, s = math.cos(box.yaw), math.sin(box.yaw)
    dx = np.array([box.half_length, box.half_length, -box.half_length, -box.half_length])
    dy = np.array([box.half_width, -box.half_width, -box.half_width, box.half_width])
    return np.stack([box.x + dx * c - dy * s, box.y + dx * s + dy * c], axis=1)


def in_corridor(box: Box, reach: float) -> bool:
    pts = corners(box)
    ahead = (pts[:, 0] > 0.0) & (pts[:, 0] < reach)
    lateral = np.abs(pts[:, 1]) < CORRIDOR_HALF_WIDTH_M
    if np.any(ahead & lateral):
        return True
    # Boxes straddling the corridor: corners on both sides of the centre line.
    return bool(np.any(ahead) and pts[:, 1].min() < 0.0 < pts[:, 1].max())


def time_to_conflict(actor: dict[str, Any], ego_speed: float) -> float:
    closing = ego_speed - actor["speed"] * math.cos(math.radians(actor["ego_yaw"]))
    if closing <= 0.05:
        return math.inf
    return max(actor["ego_x"] - actor["half_length"], 0.0) / closing


def hazard_ahead(scene: dict[str, Any], reach: float) -> tuple[bool, str]:
    ego_speed = scene["ego"]["speed"]
    for group in ("vehicles", "pedestrians"):
        for actor in scene[group]:
            if actor["distance"] > reach + 10.0:
                continue
            box = inflate(actor)
            if in_corridor(box, reach) and time_to_conflict(actor, ego_speed) < 4.0:
                return True, f"{{group[:-1]}} {{actor['id']}} in the corridor"
    return False, ""


def must_stop_for_signals(scene: dict[str, Any], reach: float) -> bool:
    light = scene.get("traffic_light")
    if light is not None and light["state"] in RED_STATES and 0.0 <= light["distance_to_stop_line"] < reach:
        return True
    sign = scene.get("stop_sign")
    return sign is not None and not sign["completed"] and 0.0 <= sign["distance_to_stop_line"] < reach


def steering_to(target: dict[str, Any]) -> float:
    angle = math.degrees(math.atan2(target["ego_y"], max(target["ego_x"], 1e-3)))
    return max(-90.0, min(90.0, angle))


def predict_speed_and_steering(scene: dict[str, Any]) -> tuple[str, float]:
    ego = scene["ego"]
    reach = stopping_distance(ego["speed"], ego["half_length"])
    target = next((p for p in scene["route"] if p["ego_x"] > 4.0), scene["route"][-1])
    steer = steering_to(target)
    if must_stop_for_signals(scene, reach):
        return STOP, steer
    hazard, _why = hazard_ahead(scene, reach)
    if hazard:
        return STOP, steer
    if abs(steer) > 30.0 and ego["speed"] > 4.0:
        return SLOW, steer
    return MOVE, steer
'''

FUNCTION = "predict_speed_and_steering"


def make_scene(rng: random.Random, n_actors: int = 12) -> dict:
    def actor(i: int, kind: str) -> dict:
        ex, ey = rng.uniform(-30, 50), rng.uniform(-20, 20)
        return {"id": i, "kind": kind, "x": ex, "y": ey, "yaw": rng.uniform(-180, 180), "ego_x": ex, "ego_y": ey,
                "ego_yaw": rng.uniform(-180, 180), "speed": rng.uniform(0, 12), "half_length": 2.4 if kind == "vehicle"
                else 0.3, "half_width": 1.0 if kind == "vehicle" else 0.3, "distance": math.hypot(ex, ey)}

    n_ped = n_actors // 4
    return {
        "ego": {"x": 0.0, "y": 0.0, "yaw": 0.0, "speed": rng.uniform(0, 12), "acceleration": 0.0,
                "half_length": 2.4, "half_width": 1.0, "steer": 0.0},
        "route": [{"x": 2.0 * k, "y": 0.1 * k * k, "ego_x": 2.0 * k, "ego_y": rng.uniform(-1, 1) * k / 5,
                   "distance": 2.0 * k, "road_option": "LANEFOLLOW"} for k in range(1, 16)],
        "vehicles": [actor(i, "vehicle") for i in range(n_actors - n_ped)],
        "pedestrians": [actor(100 + i, "pedestrian") for i in range(n_ped)],
        "traffic_light": {"id": "tl_1", "state": rng.choice(["red", "green", "yellow"]),
                          "distance_to_stop_line": rng.uniform(-5, 60)} if rng.random() < 0.5 else None,
        "stop_sign": None,
    }


def bare(sources: list[str], scenes: list[dict]) -> float:
    fns = []
    for src in sources:
        ns: dict = {}
        exec(compile(src, "<policy>", "exec"), ns)
        fns.append(ns[FUNCTION])
    t0 = time.perf_counter()
    for fn in fns:
        for scene in scenes:
            fn(scene=scene)
    return len(fns) * len(scenes) / (time.perf_counter() - t0)


def exec_per_call(sources: list[str], scenes: list[dict]) -> float:
    t0 = time.perf_counter()
    for src in sources:
        for scene in scenes:
            ns: dict = {}
            exec(src, ns)  # the reference's pattern: the whole module runs again for each call
            ns[FUNCTION](scene=scene)
    return len(sources) * len(scenes) / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--policies", type=int, default=None, help="default: max(8, 2 x workers)")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3, help="rounds; each method keeps its best round")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)

    rng = random.Random(0)
    scenes = [make_scene(rng) for _ in range(args.samples)]
    n_policies = args.policies or max(8, 2 * args.workers)
    sources = [POLICY.format(margin=1.0 + 0.25 * k) for k in range(n_policies)]
    n_evals = len(sources) * len(scenes)
    exec_subset = scenes[: max(50, args.samples // 10)]  # it is slow; a subset measures its rate
    bare_rates, exec_rates, sandbox_rates, in_call = [], [], [], []

    with SandboxPool(n_workers=args.workers, limits=SandboxLimits(call_timeout_s=5.0)) as pool:
        pool.start()
        inputs = [{"scene": s} for s in scenes]  # one inputs dict per sample, shared by all policies (as Evaluator does)
        jobs = [(src, FUNCTION, inputs) for src in sources]
        check = pool.run(jobs[:1])[0]
        assert all(r.status == "ok" for r in check), next(r for r in check if r.status != "ok")
        for _ in range(args.repeats):  # interleaved, so a noisy moment does not favour one method
            bare_rates.append(bare(sources, scenes))
            exec_rates.append(exec_per_call(sources[:2], exec_subset))
            t0 = time.perf_counter()
            results = pool.run(jobs)
            sandbox_rates.append(n_evals / (time.perf_counter() - t0))
            in_call.append(sum(r.duration_s for row in results for r in row) / n_evals)
            bad = [r for row in results for r in row if r.status != "ok"]
            assert not bad, (len(bad), bad[:2])
    bare_rate, exec_rate, sandbox_rate = max(bare_rates), max(exec_rates), max(sandbox_rates)

    log.info("workload: %d policies x %d samples = %d evaluations; %d workers on %d cores",
             len(sources), len(scenes), n_evals, args.workers, os.cpu_count() or 1)
    log.info("bare in-process loop : %9.0f evals/s  (%.1f us/call)", bare_rate, 1e6 / bare_rate)
    log.info("exec source per call : %9.0f evals/s  (%.1f us/call)", exec_rate, 1e6 / exec_rate)
    log.info("sandbox pool         : %9.0f evals/s  (%.0f per worker; %.1f us/call inside the worker's call loop)",
             sandbox_rate, sandbox_rate / args.workers, 1e6 * min(in_call))
    print(f"ratio_vs_bare={sandbox_rate / args.workers / bare_rate:.2f}")
    print(f"ratio_vs_exec_per_call={sandbox_rate / exec_rate:.1f}")


if __name__ == "__main__":
    main()
