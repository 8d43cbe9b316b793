"""``python -m driving.towns list | build NAME... [--cache-dir DIR]``: inspect and pre-build towns."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from driving.towns import BUILTIN_TOWNS, TownBuildError, TownSpecError, UnknownTownError, get_town


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m driving.towns", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="built-in towns and their generator parameters")
    build = sub.add_parser("build", help="build (or find in the cache) towns and print where they are")
    build.add_argument("names", nargs="+", help="built-in town names")
    build.add_argument("--cache-dir", default=None, help="town cache (default $LANGPROP_DRIVE_CACHE or "
                                                         "~/.cache/langprop-drive)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "list":
        for name, spec in sorted(BUILTIN_TOWNS.items()):
            sys.stdout.write(f"{name:14s} {spec.generator:7s} {json.dumps(spec.resolved(), sort_keys=True)}\n")
        return 0
    try:
        for name in args.names:
            town = get_town(name, args.cache_dir)
            cmap = town.load_map()
            sys.stdout.write(f"{name}: {town.directory} ({'built' if town.built else 'cached'}; "
                             f"{len(town.sumo_net.getEdges())} edges, {len(cmap.get_topology())} lane links, "
                             f"{len(town.stop_approaches)} stop signs)\n")
    except (UnknownTownError, TownSpecError, TownBuildError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
