"""Town specifications: a town is a name plus SUMO generator parameters.

A spec fully determines the generated network (with the SUMO version), so its canonical JSON is the
cache key. ``BUILTIN_TOWNS`` are small (a few hundred metres across) so one builds in about a second.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

GENERATORS = ("grid", "spider", "rand", "roundabout")
JUNCTION_TYPES = ("traffic_light", "priority", "priority_stop", "allway_stop", "mixed")

# Parameters every generator understands, with defaults. "mixed" = priority junctions with SUMO's
# traffic-light guess (busy junctions get lights).
COMMON_DEFAULTS: dict[str, Any] = {
    "lanes": 1,
    "junction": "traffic_light",
    "sidewalks": True,
    "crossings": True,
    "random_lanes": False,  # draw lane numbers from [1, lanes] per edge
    "speed": 13.89,
    "seed": 0,
    "turn_lanes": 0,  # extra left-turn lanes before junctions (netgenerate --turn-lanes)
    "dead_end_uturns": True,  # U-turns only at dead ends; False = no U-turns at all (dead-end lanes)
}
GENERATOR_DEFAULTS: dict[str, dict[str, Any]] = {
    "grid": {"number": 4, "length": 100.0, "attach_length": 0.0},
    "spider": {"arms": 5, "circles": 3, "radius": 70.0, "omit_center": False},
    "rand": {"iterations": 25, "min_distance": 60.0, "max_distance": 110.0},
    # a grid of roundabouts (driving.towns.plain); its junctions are always priority (ring first)
    "roundabout": {"number": 3, "spacing": 150.0, "radius": 20.0, "attach_length": 60.0, "junction": "priority"},
}
NETGENERATE_ONLY = ("random_lanes", "turn_lanes")  # options the plain-XML generator cannot honour
INTERNAL_LINK_DETAIL = 40  # points per junction lane (netconvert --junctions.internal-link-detail)


class TownSpecError(ValueError):
    """A town specification (from config) is malformed; the message names the town and the field."""


@dataclass(frozen=True)
class TownSpec:
    """A town: its name, the SUMO generator and the generator's parameters (see ``GENERATOR_DEFAULTS``)."""

    name: str
    generator: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.generator not in GENERATORS:
            raise TownSpecError(
                f"town {self.name!r}: generator {self.generator!r} is not one of {', '.join(GENERATORS)}"
            )
        allowed = set(COMMON_DEFAULTS) | set(GENERATOR_DEFAULTS[self.generator])
        unknown = sorted(set(self.params) - allowed)
        if unknown:
            raise TownSpecError(
                f"town {self.name!r}: unknown parameter(s) {', '.join(unknown)} for generator "
                f"{self.generator!r} (allowed: {', '.join(sorted(allowed))})"
            )
        full = self.resolved()
        if full["junction"] not in JUNCTION_TYPES:
            raise TownSpecError(
                f"town {self.name!r}: params.junction {full['junction']!r} is not one of {', '.join(JUNCTION_TYPES)}"
            )
        if self.generator == "roundabout":
            if full["junction"] != "priority":
                raise TownSpecError(f"town {self.name!r}: params.junction must be 'priority' for roundabouts")
            bad = [k for k in NETGENERATE_ONLY if full[k]]
            if bad:
                raise TownSpecError(f"town {self.name!r}: {', '.join(bad)} not supported by the roundabout generator")
        if not 1 <= int(full["lanes"]) <= 3:
            raise TownSpecError(f"town {self.name!r}: params.lanes must be 1, 2 or 3, got {full['lanes']!r}")

    def __hash__(self) -> int:
        return hash(self.key())

    def resolved(self) -> dict[str, Any]:
        """All parameters, defaults filled in."""
        return {**COMMON_DEFAULTS, **GENERATOR_DEFAULTS[self.generator], **dict(self.params)}

    def canonical(self) -> str:
        return json.dumps(
            {"name": self.name, "generator": self.generator, "params": self.resolved()}, sort_keys=True
        )

    def key(self, extra: str = "") -> str:
        """Short stable hash of the spec (plus ``extra``, e.g. the SUMO version)."""
        # the generated command line is part of the key: changing how a spec is built invalidates it
        text = "|".join([self.canonical(), " ".join(self.sumo_args()), extra])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> TownSpec:
        """Build from a config mapping ``{name, generator, params}`` (e.g. a Hydra node)."""
        try:
            name, generator = str(cfg["name"]), str(cfg["generator"])
        except KeyError as exc:
            raise TownSpecError(f"town config is missing field {exc.args[0]!r}: {dict(cfg)!r}") from None
        return cls(name=name, generator=generator, params=dict(cfg.get("params") or {}))

    def sumo_args(self) -> list[str]:
        """Options for ``netgenerate`` — or for ``netconvert`` on the plain files of a roundabout grid —
        without the binary, the input files and the output file."""
        p = self.resolved()
        args: list[str] = []
        if self.generator == "roundabout":
            args += ["--roundabouts.guess", "true"]
        elif self.generator == "grid":
            args += ["--grid", "--grid.number", str(int(p["number"])), "--grid.length", str(float(p["length"]))]
            if p["attach_length"]:
                args += ["--grid.attach-length", str(float(p["attach_length"]))]
        elif self.generator == "spider":
            args += [
                "--spider", "--spider.arm-number", str(int(p["arms"])),
                "--spider.circle-number", str(int(p["circles"])),
                "--spider.space-radius", str(float(p["radius"])),
            ]
            if p["omit_center"]:
                args.append("--spider.omit-center")
        else:
            args += [
                "--rand", "--rand.iterations", str(int(p["iterations"])),
                "--rand.min-distance", str(float(p["min_distance"])),
                "--rand.max-distance", str(float(p["max_distance"])),
            ]
        junction = p["junction"]
        if self.generator == "roundabout":
            pass  # lanes, speed and node types are in the plain files
        elif junction == "mixed":
            args += ["-j", "priority", "--tls.guess", "true"]
        else:
            args += ["-j", junction]
        if self.generator != "roundabout":
            args += ["-L", str(int(p["lanes"])), "-S", str(float(p["speed"])), "--seed", str(int(p["seed"]))]
        if p["turn_lanes"]:
            args += ["--turn-lanes", str(int(p["turn_lanes"])), "--turn-lanes.length", "30"]
        if p["random_lanes"]:
            args.append("--random-lanenumber")
        if p["sidewalks"]:
            args += ["--sidewalks.guess", "true"]
        if p["crossings"] and p["sidewalks"]:
            args += ["--crossings.guess", "true"]
        # U-turns make odd junction connectors and routes; keep them only where a road ends.
        args += ["--no-turnarounds.except-deadend" if p["dead_end_uturns"] else "--no-turnarounds", "true"]
        # SUMO's default of 5 points makes junction lanes polylines with 15-45 degree kinks; a SUMO car's
        # heading jumps at each, and its box (from the front bumper back along the heading) swings a
        # metre sideways into the next lane: phantom collisions with the ego on parallel turn lanes.
        args += ["--junctions.internal-link-detail", str(INTERNAL_LINK_DETAIL)]
        return args


BUILTIN_TOWNS: dict[str, TownSpec] = {
    spec.name: spec
    for spec in (
        TownSpec("grid_tls", "grid", {"number": 4, "length": 100.0, "lanes": 2, "junction": "traffic_light"}),
        TownSpec("grid_stop", "grid", {"number": 4, "length": 90.0, "lanes": 1, "junction": "priority_stop"}),
        TownSpec("grid_allway", "grid", {"number": 3, "length": 100.0, "lanes": 1, "junction": "allway_stop"}),
        TownSpec("spider_prio", "spider", {"arms": 5, "circles": 3, "radius": 70.0, "lanes": 1,
                                           "junction": "priority"}),
        TownSpec("rand_mixed", "rand", {"iterations": 25, "seed": 7, "lanes": 2, "random_lanes": True,
                                        "junction": "mixed"}),
        TownSpec("roundabouts", "roundabout", {"number": 3, "spacing": 150.0, "radius": 20.0, "lanes": 1}),
        TownSpec("grid_3lane", "grid", {"number": 3, "length": 120.0, "lanes": 3, "junction": "traffic_light"}),
    )
}
