"""Route files from the command line.

``python -m driving.routes generate --town grid_tls --seed 0 --count 50 --min-length 100 --max-length 500
--out routes/ [--format 2.x]`` writes ``<town>_<split>.xml`` per split;
``python -m driving.routes check FILE`` reads a route file and traces every route on its town;
``python -m driving.routes bench [--towns ...] [--count 50]`` prints build / planning timings.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from driving.paths import OutputPathError, prepare_output_dir
from driving.routes.planner import NoRouteError, RoutePlanner
from driving.routes.route_sets import RouteSetError, generate_route_set, write_route_set
from driving.routes.route_xml import FORMATS, RouteFileError, read_routes
from driving.towns import BUILTIN_TOWNS, TownBuildError, UnknownTownError, get_town


def _splits(text: str) -> dict[str, float]:
    try:
        pairs = [item.split("=") for item in text.split(",")]
        return {name.strip(): float(value) for name, value in pairs}
    except ValueError:
        raise argparse.ArgumentTypeError(f"--splits must look like train=0.6,val=0.2,test=0.2, got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m driving.routes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="generate a reproducible route set with splits")
    gen.add_argument("--town", required=True)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--count", type=int, default=50)
    gen.add_argument("--min-length", type=float, default=100.0)
    gen.add_argument("--max-length", type=float, default=500.0)
    gen.add_argument("--splits", type=_splits, default=None, help="e.g. train=0.6,val=0.2,test=0.2")
    gen.add_argument("--format", choices=FORMATS, default="2.x")
    gen.add_argument("--out", required=True, help="output directory")
    check = sub.add_parser("check", help="read a route file and trace its routes")
    check.add_argument("file")
    bench = sub.add_parser("bench", help="time town build/cache, map load, planner build and route planning")
    bench.add_argument("--towns", nargs="+", default=None, help="default: every built-in town")
    bench.add_argument("--count", type=int, default=50)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command == "bench":
            return _bench(args.towns or sorted(BUILTIN_TOWNS), args.count)
        if args.command == "generate":
            prepare_output_dir(args.out, "--out")
            town = get_town(args.town)
            sets = generate_route_set(town, args.seed, args.count, args.min_length, args.max_length, args.splits)
            files = write_route_set(sets, args.out, args.format, prefix=f"{town.name}_")
            for split, routes in sets.items():
                sys.stdout.write(f"{split}: {len(routes)} routes -> {files.get(split, '(no file)')}\n")
            return 0
        routes = read_routes(args.file)
        planners: dict[str, RoutePlanner] = {}
        for route in routes:
            if route.town not in planners:
                planners[route.town] = RoutePlanner(get_town(route.town).load_map())
            try:
                planned = planners[route.town].plan(route)
            except NoRouteError as exc:
                raise RouteFileError(f"{args.file}: route {route.id!r}: {exc}") from None
            sys.stdout.write(f"{route.id}: {route.town}, {len(route.keypoints)} keypoints, "
                             f"{planned.length:.1f} m\n")
        return 0
    except (RouteFileError, RouteSetError, UnknownTownError, TownBuildError, OutputPathError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2


def _bench(names: list[str], count: int) -> int:
    for name in names:
        t0 = time.perf_counter()
        town = get_town(name)
        t1 = time.perf_counter()
        cmap = town.load_map()
        t2 = time.perf_counter()
        planner = RoutePlanner(cmap)
        t3 = time.perf_counter()
        routes = [r for split in generate_route_set(town, 0, count, 100.0, 500.0).values() for r in split]
        t4 = time.perf_counter()
        for route in routes:
            planner.plan(route)
        t5 = time.perf_counter()
        metres = sum(r.length for r in routes)
        sys.stdout.write(
            f"{name:12s} town {'built' if town.built else 'cached'} {1e3 * (t1 - t0):6.0f} ms | map {1e3 * (t2 - t1):4.0f} ms"
            f" | planner {1e3 * (t3 - t2):4.0f} ms | {count} routes {t4 - t3:5.2f} s | plan "
            f"{1e3 * (t5 - t4) / len(routes):5.1f} ms/route, {metres / max(t5 - t4, 1e-9) / 1e3:5.1f} km/s\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
