"""``Town``: a built town on disk (SUMO net + OpenDRIVE + mapping), and ``get_town`` with its disk cache.

The cache entry of a spec is ``<cache>/towns/<name>-<hash(spec, SUMO version, build format)>/``. A build
happens in a private temporary directory that is renamed into place, so two processes building the
same town never see (or leave) a half-written entry: the loser of the rename race discards its copy.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from driving.towns.build import (
    BUILD_FORMAT,
    META_FILE,
    NET_FILE,
    XODR_FILE,
    TownBuildError,
    build_town_files,
    sumo_version,
)
from driving.towns.spec import BUILTIN_TOWNS, TownSpec
from driving.towns.stops import StopApproach

log = logging.getLogger(__name__)

CACHE_ENV = "LANGPROP_DRIVE_CACHE"


class UnknownTownError(ValueError):
    """A town name that is neither built in nor given as a spec; the message lists the known towns."""


@dataclass
class Town:
    """A town ready to use: its SUMO network, its OpenDRIVE map, and the mapping between the two."""

    name: str
    spec: TownSpec
    net_file: Path
    xodr_file: Path
    directory: Path
    built: bool = False  # True when this get_town call generated the files (False on a cache hit)
    _meta: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_directory(cls, spec: TownSpec, directory: Path, built: bool = False) -> Town:
        meta = json.loads((directory / META_FILE).read_text())
        return cls(spec.name, spec, directory / NET_FILE, directory / XODR_FILE, directory, built, meta)

    def __getstate__(self) -> dict[str, Any]:
        # picklable for process pools: drop the lazily loaded sumolib net and derived indexes
        return {k: v for k, v in self.__dict__.items() if k not in ("sumo_net", "_road_to_edge")}

    # --------------------------------------------------------------- map
    def load_map(self) -> Any:
        """The ``carla.Map`` of this town (cached per process)."""
        from driving.carla_map import load_carla_map

        return load_carla_map(self.xodr_file, self.name)

    def xodr_text(self) -> str:
        return self.xodr_file.read_text()

    @cached_property
    def sumo_net(self) -> Any:
        """The ``sumolib`` network (without internal lanes), loaded once."""
        import sumolib

        return sumolib.net.readNet(str(self.net_file), withInternal=False, withPedestrianConnections=False)

    @property
    def sumo_version(self) -> str:
        return str(self._meta["sumo_version"])

    # --------------------------------------------------------------- SUMO <-> OpenDRIVE ids
    @cached_property
    def _road_to_edge(self) -> dict[int, str]:
        return {int(r): e for e, r in self._meta["edge_to_road"].items()}

    def edge_of_road(self, road_id: int) -> str | None:
        """SUMO edge id of an xodr road; None for junction connectors (and unknown roads)."""
        return self._road_to_edge.get(int(road_id))

    def road_of_edge(self, edge_id: str) -> int | None:
        """xodr road id of a SUMO edge (None for internal ':…' edges and unknown ids)."""
        road = self._meta["edge_to_road"].get(edge_id)
        return None if road is None else int(road)

    def sumo_lane(self, road_id: int, lane_id: int) -> str | None:
        """SUMO lane id (``<edge>_<index>``) of an xodr (road, lane); None for connectors."""
        edge = self.edge_of_road(road_id)
        if edge is None or lane_id >= 0:
            return None
        index = self._meta["edge_lanes"][edge] + int(lane_id)
        return f"{edge}_{index}" if index >= 0 else None

    def xodr_lane(self, sumo_lane_id: str) -> tuple[int, int] | None:
        """(road_id, lane_id) of a SUMO lane ``<edge>_<index>``; None for internal lanes."""
        edge, _, index = sumo_lane_id.rpartition("_")
        road = self.road_of_edge(edge)
        if road is None or not index.isdigit():
            return None
        return road, -(self._meta["edge_lanes"][edge] - int(index))

    def connector_roads(self, road_id: int) -> tuple[int, int] | None:
        """(incoming road, outgoing road) of a junction connector road; None for normal roads."""
        pair = self._meta["connectors"].get(str(int(road_id)))
        return None if pair is None else (int(pair[0]), int(pair[1]))

    @property
    def stop_approaches(self) -> list[StopApproach]:
        """Stop-controlled approaches (one injected stop sign each)."""
        return [StopApproach(**{**s, "lane_ids": tuple(s["lane_ids"])}) for s in self._meta["stops"]]


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "langprop-drive")


def resolve_spec(name_or_spec: str | TownSpec | Mapping[str, Any]) -> TownSpec:
    """A spec from a built-in name, a ``TownSpec``, or a config mapping ``{name, generator, params}``."""
    if isinstance(name_or_spec, TownSpec):
        return name_or_spec
    if isinstance(name_or_spec, Mapping) or hasattr(name_or_spec, "keys"):
        return TownSpec.from_config(name_or_spec)
    spec = BUILTIN_TOWNS.get(str(name_or_spec))
    if spec is None:
        raise UnknownTownError(
            f"unknown town {name_or_spec!r}; known towns: {', '.join(sorted(BUILTIN_TOWNS))}"
        )
    return spec


_TOWNS: dict[tuple[str, str], Town] = {}


def get_town(name_or_spec: str | TownSpec | Mapping[str, Any], cache_dir: str | Path | None = None) -> Town:
    """The town named (built in) or specified (``TownSpec`` or config mapping), built once, cached on disk.

    Raises ``UnknownTownError`` for an unknown name and ``TownBuildError`` when SUMO fails.
    """
    spec = resolve_spec(name_or_spec)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    entry = root / "towns" / f"{spec.name}-{spec.key(f'{sumo_version()}|{BUILD_FORMAT}')}"
    memo = _TOWNS.get((str(entry), spec.canonical()))
    if memo is not None and (entry / META_FILE).exists():
        return dataclasses.replace(memo, built=False)
    built = False
    if not (entry / META_FILE).exists():
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".build-{spec.name}-", dir=entry.parent))
        except OSError as exc:
            raise TownBuildError(f"town {spec.name!r}: cannot write the town cache {entry.parent} "
                                 f"({exc.strerror}); set {CACHE_ENV} to a writable directory") from None
        try:
            t0 = time.perf_counter()
            build_town_files(spec, tmp)
            try:
                os.rename(tmp, entry)
                built = True
                log.info("built town %s in %.1f s -> %s", spec.name, time.perf_counter() - t0, entry)
            except OSError:
                if not (entry / META_FILE).exists():
                    raise
                log.debug("town %s was built concurrently by another process; using it", spec.name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    town = Town.from_directory(spec, entry, built=built)
    _TOWNS[(str(entry), spec.canonical())] = town
    return town
