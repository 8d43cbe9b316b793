"""``python -m expert.evaluate``: drive a reproducible test route set with the expert and score it.

Per town, ``driving.routes.generate_route_set(town, seed, 5 x N, ...)`` is generated and its *test*
split (N routes, each reproducible from (town, seed, index)) is driven closed loop in the embedded
world with ``ExpertDriver`` through ``leaderboard_eval.runner.run_routes``. The results go to
``<out>/results.json`` (the leaderboard's format); the summary table, the mean DS per town and a final
``mean DS`` line are printed. ``key=value`` arguments override ``ExpertConfig`` fields. Example::

    python -m expert.evaluate --towns grid_tls,spider_prio --count-per-town 3 --out runs/expert junction_speed=9

``--explain`` attributes every 2.x MinimumSpeed checkpoint to the hazards that held the car up
(``expert.explain``): ``<out>/explain.json`` and a table of the totals over the failed checkpoints.

``--reference`` also lets SUMO's own driver model drive every route in the same traffic
(``driving.worlds.embedded.reference``), scores it with the same criteria (``<out>/reference/``) and
prints its mean DS per town beside the expert's: what a law-abiding member of the traffic scores.

User errors (unknown town, bad override, an output folder that can't be written) print one line on
stderr and exit 2; Ctrl-C exits 130 with the results so far in the output folder.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import logging
import multiprocessing
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from driving.criteria.events import UnknownVersionError, check_version
from driving.routes import RouteSetError, generate_route_set
from driving.towns import TownBuildError, TownSpecError, UnknownTownError, get_town
from driving.types import Route
from expert.config import ExpertConfig
from leaderboard_eval.__main__ import EXIT_INTERRUPTED, EXIT_USAGE, error_line

log = logging.getLogger("expert.evaluate")

DEFAULT_TOWNS = ("grid_tls", "grid_stop", "spider_prio", "rand_mixed", "roundabouts")
TEST_FRACTION = 0.2  # generate_route_set's default split: the test split is a fifth of the set


class EvaluateError(Exception):
    """A user-facing problem with the arguments."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m expert.evaluate",
        description="Drive the test split of a generated route set per town with the expert; print the "
                    "leaderboard summary and the mean driving score.",
        epilog="Trailing key=value arguments override ExpertConfig fields (expert/config.py).")
    p.add_argument("--towns", default=",".join(DEFAULT_TOWNS), help="comma-separated built-in towns "
                   f"(default: {','.join(DEFAULT_TOWNS)})")
    p.add_argument("--count-per-town", "--count", dest="count", type=int, default=5,
                   help="test routes per town (the set generated has 5x as many; default 5)")
    p.add_argument("--seed", type=int, default=0, help="route-set and world seed (default 0)")
    p.add_argument("--version", default="2.0", help="leaderboard criteria and scoring: 1.0 | 2.0 | 2.1 (default 2.0)")
    p.add_argument("--min-length", type=float, default=200.0, help="shortest route, m (default 200)")
    p.add_argument("--max-length", type=float, default=600.0, help="longest route, m (default 600)")
    p.add_argument("--out", default="runs/expert_eval", help="output folder for results.json (default runs/expert_eval)")
    p.add_argument("--video-dir", help="also write a BEV MP4 and an overview PNG per route here")
    p.add_argument("--explain", action="store_true",
                   help="attribute every MinimumSpeed checkpoint to the hazards that held the car up: "
                        "writes explain.json and prints the totals over the failed checkpoints (2.x)")
    p.add_argument("--reference", action="store_true",
                   help="also drive the routes with SUMO's own driver model (same traffic, same criteria) "
                        "and print its DS beside the expert's; results in <out>/reference/")
    p.add_argument("--workers", type=int, default=1, help="towns driven in parallel processes (default 1)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="ExpertConfig overrides")
    return p


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``key=value`` strings -> typed ``ExpertConfig`` overrides (``EvaluateError`` on a bad one)."""
    fields = {f.name: f for f in dataclasses.fields(ExpertConfig)}
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip().removeprefix("driver.")
        if not sep or key not in fields:
            raise EvaluateError(f"override {item!r}: expected key=value with key an ExpertConfig field "
                                f"({', '.join(fields)})")
        kind = type(fields[key].default)
        try:
            out[key] = kind(text)
        except ValueError:
            raise EvaluateError(f"override {item!r}: {text!r} is not a {kind.__name__}") from None
    return out


def test_routes(towns: Sequence[str], count: int, seed: int, min_length: float, max_length: float) -> list[Route]:
    """The test split (``count`` routes) of each town's generated route set, towns in order."""
    if count < 1:
        raise EvaluateError(f"--count-per-town must be >= 1, got {count}")
    routes: list[Route] = []
    for name in towns:
        town = get_town(name)
        try:
            sets = generate_route_set(town, seed=seed, count=int(round(count / TEST_FRACTION)),
                                      min_length=min_length, max_length=max_length)
        except RouteSetError as exc:
            raise EvaluateError(f"routes for town {name}: {exc}") from exc
        routes += sets["test"][:count]
    return routes


class _ExpertFactory:
    """A picklable driver factory: a fresh ``ExpertDriver`` per route."""

    def __init__(self, overrides: dict[str, Any]) -> None:
        self.overrides = overrides

    def __call__(self) -> Any:
        from expert.driver import ExpertDriver

        return ExpertDriver(**self.overrides)


def _run(routes: list[Route], checkpoint: Path, args_dict: dict[str, Any]
         ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(results, explain rows: [] without ``args_dict["explain"]``)."""
    from driving.worlds.embedded import EmbeddedWorldConfig
    from expert.explain import MinSpeedExplainer
    from leaderboard_eval.runner import run_routes

    explainer = MinSpeedExplainer() if args_dict.get("explain") else None
    world_config = EmbeddedWorldConfig(seed=args_dict["seed"])
    driver_factory: Any = _ExpertFactory(args_dict["overrides"])
    world_factory = None
    if args_dict.get("reference"):
        from driving.worlds.embedded.reference import SumoDrivenWorld, SumoReferenceDriver
        from leaderboard_eval.runner import embedded_world_factory, prepare_routes

        routes = prepare_routes(routes)
        driver_factory = SumoReferenceDriver
        world_factory = embedded_world_factory(world_config, SumoDrivenWorld)
    results = run_routes(routes, world_config, driver_factory, version=args_dict["version"],
                         checkpoint_path=checkpoint, video_dir=args_dict["video_dir"], seed=args_dict["seed"],
                         progress=args_dict["progress"], on_step=explainer, world_factory=world_factory)
    return results, explainer.rows() if explainer is not None else []


def run(routes: list[Route], out: Path, args_dict: dict[str, Any], workers: int
        ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Drive ``routes`` (towns in parallel with ``workers`` > 1) and write ``out/results.json``; returns
    the results and the ``--explain`` rows (route order)."""
    checkpoint = out / "results.json"
    if workers <= 1:
        return _run(routes, checkpoint, args_dict)
    from leaderboard_eval.results import read_records, write_results

    by_town: dict[str, list[Route]] = {}
    for r in routes:
        by_town.setdefault(r.town, []).append(r)
    parts = {town: out / f"results_{town}.json" for town in by_town}
    # one process per town at a time: libsumo allows one simulation per process
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = {t: pool.submit(_run, rs, parts[t], {**args_dict, "progress": False}) for t, rs in by_town.items()}
        for f in concurrent.futures.as_completed(futures.values()):
            f.result()
    explained = [row for t in by_town for row in futures[t].result()[1]]
    records = []
    for town in by_town:
        for rec in read_records(parts[town]):
            rec.index = len(records)
            records.append(rec)
    return write_results(checkpoint, records, args_dict["version"], total_routes=len(routes)), explained


def town_means(results: dict[str, Any], towns: Sequence[str]) -> dict[str, float]:
    """Mean DS of each town's routes (route ids are '<town>_<seed>_<i>')."""
    sums: dict[str, list[float]] = {t: [] for t in towns}
    for rec in results.get("_checkpoint", {}).get("records", []):
        rid = str(rec.get("route_id", ""))
        town = next((t for t in sorted(towns, key=len, reverse=True) if f"_{t}_" in f"_{rid.removeprefix('RouteScenario_')}"), None)
        if town is not None:
            sums[town].append(float(rec["scores"]["score_composed"]))
    return {t: sum(v) / len(v) for t, v in sums.items() if v}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_intermixed_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from leaderboard_eval.__main__ import _print_summary
    from leaderboard_eval.runner import RunnerError, prepare_output_dir

    towns = [t.strip() for t in str(args.towns).split(",") if t.strip()]
    out = Path(args.out)
    try:
        if not towns:
            raise EvaluateError("--towns names no town")
        version = check_version(args.version)
        overrides = parse_overrides(args.overrides)
        ExpertConfig(**overrides)
        prepare_output_dir(out, "--out")
        if args.video_dir:
            prepare_output_dir(args.video_dir, "--video-dir")
        routes = test_routes(towns, args.count, args.seed, args.min_length, args.max_length)
        if args.explain and version == "1.0":
            raise EvaluateError("--explain explains the MinimumSpeed criterion, which 1.0 does not have")
        args_dict = {"seed": args.seed, "overrides": overrides, "version": version, "video_dir": args.video_dir,
                     "progress": not args.quiet, "explain": args.explain}
        results, explained = run(routes, out, args_dict, max(1, int(args.workers)))
        reference = None
        if args.reference:
            prepare_output_dir(out / "reference", "--out")
            reference, _ = run(routes, out / "reference", {**args_dict, "reference": True, "explain": False,
                                                          "video_dir": None}, max(1, int(args.workers)))
    except KeyboardInterrupt:
        print(f"expert.evaluate: interrupted; results so far in {out}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (EvaluateError, RunnerError, UnknownTownError, TownSpecError, TownBuildError, UnknownVersionError,
            ) as exc:
        print(f"expert.evaluate: error: {error_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    _print_summary(results, out / "results.json")
    if args.explain:
        from expert.explain import print_totals

        (out / "explain.json").write_text(json.dumps(explained, indent=1) + "\n")
        print_totals(explained)
        print(f"explanation per checkpoint: {out / 'explain.json'}")
    reference_means = town_means(reference, towns) if reference is not None else {}
    for town, ds in town_means(results, towns).items():
        beside = f"   (SUMO's driver: {reference_means[town]:.2f})" if town in reference_means else ""
        print(f"{town}: mean DS {ds:.2f}{beside}")
    if reference is not None:
        print(f"reference, SUMO's own driver on the same routes: mean DS {mean_ds(reference):.2f} "
              f"({out / 'reference' / 'results.json'})")
        print(f"min-speed penalties alone (RC x IP of min_speed_infractions only): SUMO's driver "
              f"{min_speed_only_ds(reference, version):.2f}, the expert {min_speed_only_ds(results, version):.2f}")
    print(f"mean DS: {mean_ds(results):.2f} over {len(routes)} routes (version {version})")
    return 0


def min_speed_only_ds(results: dict[str, Any], version: str) -> float:
    """Mean over the routes of RC x the infraction penalty of the ``min_speed_infractions`` alone: the
    score a route would have had without its other infractions (a driver's collisions do not hide how
    it fared on the MinimumSpeed check)."""
    import re

    from driving.criteria.events import MIN_SPEED, InfractionEvent
    from driving.scoring import infraction_penalty

    scores = []
    for rec in results["_checkpoint"]["records"]:
        events = [InfractionEvent(MIN_SPEED, 0, 0.0, 0.0, 0.0, message, value=float(m.group(1)))
                  for message in rec["infractions"].get(MIN_SPEED, [])
                  if (m := re.search(r"([-\d.]+)%", message))]
        scores.append(float(rec["scores"]["score_route"]) * infraction_penalty(events, version))
    return sum(scores) / len(scores) if scores else 0.0


def mean_ds(results: dict[str, Any]) -> float:
    """The global mean driving score of a results.json."""
    glob = results["_checkpoint"]["global_record"]
    return float((glob.get("scores_mean") or glob.get("scores") or {}).get("score_composed", 0.0))


if __name__ == "__main__":
    sys.exit(main())
