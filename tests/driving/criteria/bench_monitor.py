"""CPU cost of the criteria per world tick (prints numbers; no assertions).

    python tests/driving/criteria/bench_monitor.py

RouteMonitor.update on a 100 m route of the built-in grid_tls town with 120 actors scattered over
the town (80 vehicles, 40 pedestrians), a red light on the route; and the OBB overlap alone.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from driving.criteria import RouteMonitor  # noqa: E402
from driving.geometry import boxes_to_array, obb_overlap  # noqa: E402
from driving.signals import load_stop_lines  # noqa: E402
from driving.towns import get_town  # noqa: E402
from driving.types import ActorBox  # noqa: E402
from tests.driving.criteria.conftest import Path as RoutePath  # noqa: E402
from tests.driving.criteria.conftest import drive, walk_route  # noqa: E402


def main() -> None:
    town = get_town("grid_tls")
    lines = load_stop_lines(town)
    line = next(sl for sl in lines if sl.id == "A0_0")
    route = walk_route(town.load_map(), line, 40, 40)
    rng = random.Random(0)
    actors = [ActorBox(100 + i, "vehicle" if i < 80 else "pedestrian", rng.uniform(-150, 150), rng.uniform(-300, 0),
                       rng.uniform(-180, 180), 2.2, 0.9, 8.0) for i in range(120)]
    ticks = list(drive(RoutePath(route), lambda t, d: 5.0, actors=lambda *a: actors, lights=lambda t: {line.id: "red"}))
    for version in ("1.0", "2.0", "2.1"):
        monitor = RouteMonitor(route, town, version=version, stop_lines=lines)
        start, n = time.process_time(), 0
        for tick in ticks:
            monitor.update(tick)
            n += 1
            if monitor.done:
                break
        cpu = time.process_time() - start
        sys.stdout.write(f"RouteMonitor.update ({version}, 120 actors): {cpu / n * 1e6:.0f} us CPU per tick over {n} ticks\n")
    ego = (0.0, 0.0, 30.0, 2.4, 1.0)
    boxes = boxes_to_array(actors)
    for prefilter in (True, False):
        start = time.process_time()
        for _ in range(2000):
            obb_overlap(ego, boxes, prefilter=prefilter)
        per = (time.process_time() - start) / 2000 * 1e6
        sys.stdout.write(f"obb_overlap, 120 boxes, prefilter={prefilter}: {per:.1f} us\n")


if __name__ == "__main__":
    main()
