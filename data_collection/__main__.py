"""``python -m data_collection``: drive a route set and record every frame into HDF5 episode files.

An argparse CLI over the Hydra config tree ``conf/collect.yaml`` (the same tree and helpers as
``python -m leaderboard_eval``): the flags are shorthands for Hydra overrides, and any ``key=value``
override (``world.n_vehicles=40``, ``labeller.<field>=...``) can follow them. Examples::

    python -m data_collection --town grid_tls --count 10 --out data/ --workers 2
    python -m data_collection --routes routes.xml --out dagger/ --driver route_follower --labeller expert
    python -m data_collection --town grid_stop --count 50 --out data/ --backend ray --workers 8
    python -m data_collection --show data/        # the summary table of the files in a folder

A rerun with the same --out resumes: complete files are skipped, interrupted routes are redone.
User errors (unknown town, bad route file, bad override, an --out that can't be written, files in
--out recorded with another config) print one line on stderr and exit 2; Ctrl-C stops the workers,
keeps the complete files and exits 130.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from leaderboard_eval.__main__ import (
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    _quote,
    _raise_interrupt,
    _user_errors,
    compose_config,
    driver_overrides,
    error_line,
    load_routes,
    print_summary_table,
    route_flag_overrides,
    world_config_from,
)

log = logging.getLogger("data_collection")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m data_collection",
        description="Drive routes in the embedded world and record every frame (scene, expert label, "
                    "applied control, infractions) into one HDF5 file per route. A rerun resumes.",
        epilog="Trailing key=value arguments are Hydra overrides of conf/collect.yaml.")
    p.add_argument("--routes", help="leaderboard route XML (1.0 or 2.x); default: generate routes for --town")
    p.add_argument("--town", help="town of generated routes (world.town), e.g. grid_tls")
    p.add_argument("--count", type=int, help="number of generated routes (routes.count)")
    p.add_argument("--split", help="generated split: train | val | test | all (routes.split)")
    p.add_argument("--seed", type=int, help="seed of route generation and of the world (seed, routes.seed)")
    p.add_argument("--routes-subset", help="route ids to record, e.g. 0-4,7")
    p.add_argument("--repetitions", type=int, help="record each route this many times (world seed + r)")
    p.add_argument("--out", help="output folder (out_dir): <route_id>_rep<r>.h5 per route, results.json")
    p.add_argument("--driver", help="who drives: a config in conf/driver/ (expert, route_follower) or a class path")
    p.add_argument("--labeller", help="who labels: a config in conf/driver/, a class path, or none")
    p.add_argument("--record-every", type=int, help="record every N-th 20 Hz tick")
    p.add_argument("--workers", type=int, help="parallel workers, one world each")
    p.add_argument("--backend", help="process (default) | ray | inline")
    p.add_argument("--overwrite", action="store_true", help="record routes that already have a file again")
    p.add_argument("--version", help="leaderboard version for criteria and scoring: 1.0 | 2.0 | 2.1")
    p.add_argument("--wall-time-limit", type=float, help="wall-clock seconds per route before it is ended")
    p.add_argument("--blocked-time", type=float, help="seconds below 0.1 m/s that end a route (default 180)")
    p.add_argument("--show", metavar="DIR", help="print the summary table of the episode files in DIR and exit")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="Hydra overrides")
    return p


def flag_overrides(args: argparse.Namespace) -> list[str]:
    """Hydra overrides equivalent to the flags given (flags first, so explicit overrides win)."""
    out = route_flag_overrides(args)
    simple = {"routes_subset": args.routes_subset, "repetitions": args.repetitions, "out_dir": args.out,
              "record_every": args.record_every, "workers": args.workers, "backend": args.backend,
              "version": args.version, "wall_time_limit_s": args.wall_time_limit,
              "blocked_time_s": args.blocked_time}
    for key, value in simple.items():
        if value is not None:
            out.append(f"{key}={_quote(value) if isinstance(value, str) else value}")
    if args.driver is not None:
        out += driver_overrides(args.driver, "driver")
    if args.labeller is not None:
        out += driver_overrides(args.labeller, "driver@labeller")
    if args.overwrite:
        out.append("overwrite=true")
    if args.quiet:
        out.append("progress=false")
    return out


def collect_config_from(cfg: Any) -> Any:
    """A ``CollectConfig`` from the composed Hydra config."""
    from omegaconf import OmegaConf

    from data_collection.collect import CollectConfig

    def spec(node: Any) -> Any:
        return None if node is None else OmegaConf.to_container(node, resolve=True)

    return CollectConfig(
        out_dir=str(cfg.out_dir), driver=spec(cfg.driver), labeller=spec(cfg.get("labeller")),
        record_every=int(cfg.record_every), workers=int(cfg.workers), backend=str(cfg.backend),
        version=str(cfg.version), seed=int(cfg.seed), repetitions=int(cfg.repetitions),
        world=world_config_from(cfg), wall_time_limit_s=cfg.wall_time_limit_s, blocked_time_s=cfg.blocked_time_s,
        overwrite=bool(cfg.overwrite), progress=bool(cfg.progress), ray_address=cfg.get("ray_address"))


def _errors() -> tuple[type[BaseException], ...]:
    from data_collection.collect import CollectError
    from data_collection.parallel import CollectBackendError

    return (*_user_errors(), CollectError, CollectBackendError)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_intermixed_args(argv)  # overrides may come before or after flags
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _raise_interrupt)  # a terminated run stops its workers cleanly
    out = None
    try:
        if args.show:
            from data_collection.collect import summarize_dir

            _print_summary(summarize_dir(args.show), Path(args.show))
            return 0
        cfg = compose_config(flag_overrides(args) + list(args.overrides), "collect")
        config = collect_config_from(cfg)
        out = Path(config.out_dir)
        from data_collection.collect import collect, results_of

        summaries = collect(load_routes(cfg), config)
        _print_summary(results_of(summaries, config.version), out)
    except KeyboardInterrupt:
        where = f" in {out}" if out is not None else ""
        print(f"data_collection: interrupted; complete files kept{where} (rerun to resume)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except _errors() as exc:
        print(f"data_collection: error: {error_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def _print_summary(results: dict[str, Any], out: Path) -> None:
    print_summary_table(results, title="Collected routes")
    files = results.get("_collect", {})
    print(f"{files.get('files', 0)} episode files, {files.get('frames', 0)} frames in {out.resolve()}")


if __name__ == "__main__":
    sys.exit(main())
