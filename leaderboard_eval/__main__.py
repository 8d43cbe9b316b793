"""``python -m leaderboard_eval``: run routes in the embedded world and score them like the leaderboard.

An argparse CLI over the Hydra config tree ``conf/eval.yaml``: the flags are shorthands for Hydra
overrides, and any ``key=value`` override (``world.n_vehicles=40``, ``driver=route_follower``) can
follow them. Examples::

    python -m leaderboard_eval --town grid_tls --count 3 --seed 1 --checkpoint results.json
    python -m leaderboard_eval --routes routes.xml --routes-subset 0-4,7 --repetitions 2 --resume
    python -m leaderboard_eval --routes routes.xml --video-dir videos/ world.n_vehicles=20

User errors (bad route file, unknown town, bad override, a checkpoint or video path that can't be
written) print one line on stderr and exit 2;
Ctrl-C writes the results so far and exits 130 (continue with ``--resume``).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from leaderboard_eval.runner import (
    RunnerError,
    check_checkpoint_path,
    prepare_output_dir,
    run_routes,
    select_routes,
)

log = logging.getLogger("leaderboard_eval")

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def parse_bool(text: str) -> bool:
    """``--resume false`` means False (the leaderboard's ``type=bool`` made any string True)."""
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m leaderboard_eval",
        description="Run routes closed loop in the embedded world; write the leaderboard's results.json.",
        epilog="Trailing key=value arguments are Hydra overrides of conf/eval.yaml.")
    p.add_argument("--routes", help="leaderboard route XML (1.0 or 2.x); default: generate routes for --town")
    p.add_argument("--town", help="town of generated routes (world.town), e.g. grid_tls")
    p.add_argument("--count", type=int, help="number of generated routes (routes.count)")
    p.add_argument("--split", help="generated split to run: train | val | test | all (routes.split)")
    p.add_argument("--seed", type=int, help="seed of route generation and of the world (seed, routes.seed)")
    p.add_argument("--routes-subset", help="route ids to run, e.g. 0-4,7")
    p.add_argument("--repetitions", type=int, help="run each route this many times")
    p.add_argument("--driver", help="driver config name (conf/driver/) or a class path pkg.module.Class")
    p.add_argument("--version", help="leaderboard version for criteria and scoring: 1.0 | 2.0 | 2.1")
    p.add_argument("--checkpoint", help="results.json path (written after every route)")
    p.add_argument("--resume", nargs="?", const=True, type=parse_bool,
                   help="skip routes already recorded in --checkpoint (a bare flag, or true/false)")
    p.add_argument("--video-dir", help="write a BEV MP4 and an overview PNG per route into this folder")
    p.add_argument("--wall-time-limit", type=float, help="wall-clock seconds per route before it is ended")
    p.add_argument("--blocked-time", type=float, help="seconds below 0.1 m/s that end a route (default 180)")
    p.add_argument("--show", metavar="RESULTS_JSON",
                   help="print the summary table of an existing results.json (ours or the leaderboard's) and exit")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="Hydra overrides")
    return p


def _quote(value: str) -> str:
    """A string as a Hydra override value (quoted: paths may hold characters Hydra's grammar reserves)."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def route_flag_overrides(args: argparse.Namespace) -> list[str]:
    """Overrides of the route-choosing flags every route CLI has (--routes, --town, --count, --split, --seed)."""
    out: list[str] = []
    if args.routes is not None:
        out += ["routes=file", f"routes.file={_quote(args.routes)}"]
    if args.town is not None:
        out.append(f"world.town={_quote(args.town)}")
    if args.count is not None:
        out.append(f"routes.count={args.count}")
    if args.split is not None:
        out.append(f"routes.split={_quote(args.split)}")
    if args.seed is not None:
        out.append(f"seed={args.seed}")
        if args.routes is None:
            out.append(f"routes.seed={args.seed}")
    return out


def driver_overrides(value: str, group: str = "driver") -> list[str]:
    """Hydra overrides selecting a driver for config ``group`` (``driver`` or ``driver@labeller``):
    ``<group>=<name>`` for a config in conf/driver/; else the group's config is dropped and replaced by
    ``{_target_: value}`` alone (a class path: the default driver's keyword arguments do not follow
    it); ``none`` drops a non-driver group."""
    if value.strip().lower() in ("none", "null") and group != "driver":
        return [f"~{group}"]
    if (CONF_DIR / "driver" / f"{value}.yaml").exists():
        return [f"{group}={value}"]
    key = "driver" if group == "driver" else group.partition("@")[2]
    return [f"~{group}", f"+{key}._target_={_quote(value.replace(':', '.'))}"]


def flag_overrides(args: argparse.Namespace) -> list[str]:
    """Hydra overrides equivalent to the flags given (flags first, so explicit overrides win)."""
    out = route_flag_overrides(args)
    if args.routes_subset is not None:
        out.append(f"routes_subset={_quote(args.routes_subset)}")
    if args.repetitions is not None:
        out.append(f"repetitions={args.repetitions}")
    if args.driver is not None:
        out += driver_overrides(args.driver)
    if args.version is not None:
        out.append(f"version={_quote(args.version)}")
    if args.checkpoint is not None:
        out.append(f"checkpoint={_quote(args.checkpoint)}")
    if args.resume is not None:
        out.append(f"resume={str(args.resume).lower()}")
    if args.video_dir is not None:
        out.append(f"video_dir={_quote(args.video_dir)}")
    if args.wall_time_limit is not None:
        out.append(f"wall_time_limit_s={args.wall_time_limit}")
    if args.blocked_time is not None:
        out.append(f"blocked_time_s={args.blocked_time}")
    if args.quiet:
        out.append("progress=false")
    return out


def compose_config(overrides: Sequence[str], config_name: str = "eval") -> Any:
    """``conf/<config_name>.yaml`` composed with ``overrides`` (Hydra's compose API; no working-dir change)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        return compose(config_name=config_name, overrides=list(overrides))


def world_config_from(cfg: Any) -> Any:
    """``EmbeddedWorldConfig`` from ``cfg.world`` (typed merge: an unknown key or a bad type names itself)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from driving.worlds.embedded import EmbeddedWorldConfig

    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(EmbeddedWorldConfig), cfg.world))
    except OmegaConfBaseException as exc:
        raise RunnerError(f"world: {str(exc).splitlines()[0]}") from exc


def load_routes(cfg: Any) -> list[Any]:
    """The route set of ``cfg.routes``: read from a file, or generated for ``cfg.world.town``."""
    source = cfg.routes.get("source")
    if source == "file":
        from driving.routes import read_routes

        path = Path(str(cfg.routes.file))
        if not path.is_file():
            raise RunnerError(f"route file {path}: not found")
        routes = read_routes(path)
        if not routes:
            raise RunnerError(f"route file {path}: contains no <route>")
    elif source == "generated":
        from driving.towns import get_town

        town = get_town(str(cfg.world.town))  # an unknown town fails here, before anything is built
        from driving.routes import RouteSetError, generate_route_set

        try:
            sets = generate_route_set(town, seed=int(cfg.routes.seed), count=int(cfg.routes.count),
                                      min_length=float(cfg.routes.min_length),
                                      max_length=float(cfg.routes.max_length))
        except RouteSetError as exc:
            raise RunnerError(f"routes (generated, town {town.name}): {exc}") from exc
        split = str(cfg.routes.split)
        if split == "all":
            routes = [r for name in sets for r in sets[name]]
        elif split in sets:
            routes = list(sets[split])
        else:
            raise RunnerError(f"routes.split: {split!r} is not one of all, {', '.join(sets)}")
        if not routes:
            raise RunnerError(f"routes: no route generated for town {town.name} (split {split}, count {cfg.routes.count})")
    else:
        raise RunnerError(f"routes.source: {source!r} is not 'file' or 'generated'")
    return select_routes(routes, cfg.get("routes_subset"))


def check_output_paths(cfg: Any) -> None:
    """Fail before anything runs when results or videos could not be written (``RunnerError``).

    The checkpoint must be a file path whose folder exists or can be created; the video folder is
    created. Both are made here, so a bad path is one line on stderr rather than a traceback later.
    """
    check_checkpoint_path(str(cfg.checkpoint))
    if cfg.get("video_dir"):
        prepare_output_dir(str(cfg.video_dir), "--video-dir")


def driver_factory_from(cfg: Any) -> Callable[[], Any]:
    """A factory making a fresh driver per route from ``cfg.driver`` (``_target_`` + kwargs)."""
    from hydra.utils import instantiate

    spec = cfg.driver

    def make() -> Any:
        return instantiate(spec)

    try:
        probe = make()  # fail now, once, with one line, rather than on every route
    except Exception as exc:  # noqa: BLE001 - any construction error is a config error here
        cause = exc.__cause__ or exc
        raise RunnerError(f"driver: cannot create {spec.get('_target_')!r}: {cause}") from exc
    close = getattr(probe, "close", None)
    if callable(close):  # drivers holding workers (LangProp policies) release them
        close()
    return make


def summary_table(results: dict[str, Any]) -> Any:
    """A rich table: DS, RC, IP, status and infractions per route, and the global averages."""
    from rich.table import Table

    table = Table(title="Leaderboard results", show_lines=False)
    for col, justify in (("route", "left"), ("status", "left"), ("DS", "right"), ("RC", "right"),
                         ("IP", "right"), ("infractions", "left")):
        table.add_column(col, justify=justify)
    block = results.get("_checkpoint", {})
    for rec in block.get("records", []):
        scores = rec.get("scores", {})
        counts = {k: len(v) for k, v in rec.get("infractions", {}).items() if v}
        table.add_row(rec.get("route_id", "?"), rec.get("status", "?"),
                      f"{scores.get('score_composed', 0.0):.2f}", f"{scores.get('score_route', 0.0):.2f}",
                      f"{scores.get('score_penalty', 0.0):.3f}",
                      ", ".join(f"{k} {n}" for k, n in counts.items()) or "-")
    glob = block.get("global_record") or {}
    gscores = glob.get("scores_mean") or glob.get("scores") or {}
    if gscores:
        table.add_section()
        table.add_row("mean", glob.get("status", ""), f"{gscores.get('score_composed', 0.0):.2f}",
                      f"{gscores.get('score_route', 0.0):.2f}", f"{gscores.get('score_penalty', 0.0):.3f}", "")
    return table


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean "the input is wrong", printed as one line."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    errors: list[type[BaseException]] = [RunnerError, HydraException, OmegaConfBaseException]
    for module, names in (("driving.routes", ("RouteFileError",)),
                          ("driving.towns", ("UnknownTownError", "TownSpecError", "TownBuildError")),
                          ("driving.criteria.events", ("UnknownVersionError",)),
                          ("driving.worlds.embedded", ("EmbeddedWorldError",)),
                          ("leaderboard_eval.results", ("ResultsFileError",))):
        try:
            mod = __import__(module, fromlist=list(names))
        except ImportError:
            continue
        errors.extend(getattr(mod, n) for n in names if hasattr(mod, n))
    return tuple(errors)


def error_line(exc: BaseException) -> str:
    """A user error as one line (Hydra's appended config search path dropped)."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    return message.split(" Config search path:")[0]


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_intermixed_args(argv)  # overrides may come before or after flags
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _raise_interrupt)  # a killed run still writes its results
    cfg = None
    try:
        if args.show:
            from leaderboard_eval.results import read_results

            _print_summary(read_results(args.show), Path(args.show))
            return 0
        cfg = compose_config(flag_overrides(args) + list(args.overrides))
        check_output_paths(cfg)
        routes = load_routes(cfg)
        world_config = world_config_from(cfg)
        drivers = driver_factory_from(cfg)
        results = run_routes(
            routes, world_config, drivers, version=str(cfg.version), checkpoint_path=str(cfg.checkpoint),
            video_dir=cfg.video_dir, repetitions=int(cfg.repetitions), resume=bool(cfg.resume),
            seed=int(cfg.seed), wall_time_limit_s=cfg.wall_time_limit_s, blocked_time_s=cfg.blocked_time_s,
            progress=bool(cfg.progress))
    except KeyboardInterrupt:
        where = f" in {cfg.checkpoint}" if cfg is not None else ""
        print(f"leaderboard_eval: interrupted; results so far{where} (continue with --resume)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except _user_errors() as exc:
        print(f"leaderboard_eval: error: {error_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    _print_summary(results, Path(str(cfg.checkpoint)))
    return 0


def print_summary_table(results: dict[str, Any], title: str | None = None) -> None:
    """The summary table on stdout, full width when piped or logged."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal:  # piped/logged: don't squeeze the table into 80 columns
        console = Console(width=200)
    table = summary_table(results)
    if title is not None:
        table.title = title
    console.print(table)


def _print_summary(results: dict[str, Any], path: Path) -> None:
    print_summary_table(results)
    print(f"results: {path.resolve()}")


if __name__ == "__main__":
    sys.exit(main())
