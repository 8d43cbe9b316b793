"""Build a town's files: netgenerate (or plain XML + netconvert) → netconvert OpenDRIVE → edge/road
mapping → stop signs.

Output directory layout (what ``driving.towns.Town`` reads):
``net.net.xml`` (SUMO network), ``town.xodr`` (OpenDRIVE with stop signs), ``meta.json`` (edge ↔
road mapping, junction connectors, stop approaches, SUMO version). ``meta.json`` is written last.
"""

from __future__ import annotations

import functools
import json
import logging
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import asdict
from pathlib import Path
from typing import Any

import carla
import sumolib

from driving.towns.plain import write_roundabout_grid
from driving.towns.spec import TownSpec
from driving.towns.stops import STOP_STATES, StopApproach, inject_stop_signs
from langprop.atomic import atomic_write_json

log = logging.getLogger(__name__)

NET_FILE, XODR_FILE, META_FILE = "net.net.xml", "town.xodr", "meta.json"
# Bump when the build output changes shape so old cache entries are not reused.
BUILD_FORMAT = 2  # 2: smooth junction lanes (INTERNAL_LINK_DETAIL)


class TownBuildError(RuntimeError):
    """A SUMO tool failed or produced an unusable network; the message names the town and the step."""


@functools.cache
def sumo_version() -> str:
    try:
        from importlib.metadata import version

        return version("eclipse-sumo")
    except Exception:  # e.g. SUMO from a system package: ask the binary
        out = subprocess.run([sumolib.checkBinary("netgenerate"), "--version"], capture_output=True, text=True)
        return out.stdout.splitlines()[0].split()[-1] if out.stdout else "unknown"


def _run(town: str, step: str, cmd: list[str], cwd: Path) -> None:
    log.debug("town %s: %s: %s", town, step, " ".join(cmd))
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    except FileNotFoundError:
        raise TownBuildError(f"town {town!r}: {step}: binary {cmd[0]} not found (install eclipse-sumo)") from None
    except subprocess.TimeoutExpired:
        raise TownBuildError(f"town {town!r}: {step} did not finish within 300 s") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise TownBuildError(f"town {town!r}: {step} failed (exit {proc.returncode}): {' | '.join(tail)}")


def build_town_files(spec: TownSpec, out_dir: Path) -> dict[str, Any]:
    """Generate every file of ``spec`` into ``out_dir`` (which must exist); return the metadata."""
    net, xodr = out_dir / NET_FILE, out_dir / XODR_FILE
    if spec.generator == "roundabout":
        nodes, edges = write_roundabout_grid(spec.resolved(), out_dir)
        _run(spec.name, "netconvert (plain roundabout grid)",
             [sumolib.checkBinary("netconvert"), "--node-files", nodes.name, "--edge-files", edges.name,
              *spec.sumo_args(), "-o", NET_FILE], out_dir)
        nodes.unlink()
        edges.unlink()
    else:
        _run(spec.name, "netgenerate", [sumolib.checkBinary("netgenerate"), *spec.sumo_args(), "-o", NET_FILE],
             out_dir)
    _run(spec.name, "netconvert --opendrive-output",
         [sumolib.checkBinary("netconvert"), "-s", NET_FILE, "--opendrive-output", "raw.xodr"], out_dir)
    raw_text = _add_georeference((out_dir / "raw.xodr").read_text())
    sumo_net = sumolib.net.readNet(str(net), withInternal=False, withPedestrianConnections=False)
    cmap = carla.Map(spec.name, raw_text)
    edge_to_road, edge_lanes = map_edges_to_roads(spec.name, sumo_net, cmap)
    stops = find_stop_approaches(sumo_net, edge_to_road, road_lengths(raw_text))
    xodr.write_text(inject_stop_signs(raw_text, stops))
    (out_dir / "raw.xodr").unlink()
    meta = {
        "format": BUILD_FORMAT,
        "spec": json.loads(spec.canonical()),
        "sumo_version": sumo_version(),
        "edge_to_road": edge_to_road,
        "edge_lanes": edge_lanes,
        "connectors": junction_connectors(xodr),
        "stops": [asdict(s) for s in stops],
    }
    atomic_write_json(out_dir / META_FILE, meta, indent=1, sort_keys=True)
    return meta


def map_edges_to_roads(town: str, net: Any, cmap: carla.Map) -> tuple[dict[str, int], dict[str, int]]:
    """SUMO edge id → xodr road id, by projecting each lane's midpoint onto the map.

    netconvert writes one road per edge, in SUMO coordinates with y flipped, lane id
    ``-(numLanes - sumoIndex)``; a lane whose midpoint lands on another road/lane is a build error.
    """
    edge_to_road: dict[str, int] = {}
    edge_lanes: dict[str, int] = {}
    for edge in net.getEdges():
        n = edge.getLaneNumber()
        edge_lanes[edge.getID()] = n
        votes: set[int] = set()
        for lane in edge.getLanes():
            shape = lane.getShape()
            x, y = _polyline_midpoint(shape)
            wp = cmap.get_waypoint(carla.Location(x=x, y=-y, z=0.0), project_to_road=True,
                                   lane_type=carla.LaneType.Any)
            want = -(n - lane.getIndex())
            if wp is None or wp.lane_id != want:
                raise TownBuildError(
                    f"town {town!r}: SUMO lane {lane.getID()} midpoint maps to "
                    f"{'nothing' if wp is None else f'road {wp.road_id} lane {wp.lane_id}'}, expected lane {want}"
                )
            votes.add(wp.road_id)
        if len(votes) != 1:
            raise TownBuildError(f"town {town!r}: SUMO edge {edge.getID()} maps to several roads {sorted(votes)}")
        edge_to_road[edge.getID()] = votes.pop()
    return edge_to_road, edge_lanes


def _polyline_midpoint(shape: list[tuple[float, ...]]) -> tuple[float, float]:
    seg = [((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2) ** 0.5 for a, b in zip(shape, shape[1:], strict=False)]
    half = sum(seg) / 2.0
    for (a, b), d in zip(zip(shape, shape[1:], strict=False), seg, strict=True):
        if half <= d and d > 0:
            f = half / d
            return a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1])
        half -= d
    return shape[-1][0], shape[-1][1]


def find_stop_approaches(net: Any, edge_to_road: dict[str, int],
                         lengths: dict[int, float]) -> list[StopApproach]:
    """Edges whose vehicle links into a junction have state 's' (stop) or 'w' (all-way stop)."""
    stops: list[StopApproach] = []
    for edge in net.getEdges():
        n = edge.getLaneNumber()
        stopped: set[int] = set()
        for conns in edge.getOutgoing().values():
            for conn in conns:
                lane = conn.getFromLane()
                if conn.getState() in STOP_STATES and lane.allows("passenger"):
                    stopped.add(-(n - lane.getIndex()))
        if not stopped:
            continue
        # t: right edge of the outermost stopped lane (lanes to the right have negative t).
        widths = {-(n - ln.getIndex()): ln.getWidth() for ln in edge.getLanes()}
        t = -sum(w for lid, w in widths.items() if lid >= min(stopped))
        stops.append(StopApproach(
            id=f"stop_{edge.getID()}", edge_id=edge.getID(), junction_id=edge.getToNode().getID(),
            road_id=edge_to_road[edge.getID()], s=lengths[edge_to_road[edge.getID()]], lane_ids=tuple(sorted(stopped)), t=t,
        ))
    return stops


def _add_georeference(xodr_text: str) -> str:
    """Give the header a geoReference (origin 0/0) so carla's GNSS conversion is defined and quiet."""
    head = xodr_text.find("<header ")
    end = xodr_text.find("/>", head)
    if head < 0 or end < 0 or "<geoReference" in xodr_text:
        return xodr_text
    return (xodr_text[:end] + "><geoReference><![CDATA[+proj=tmerc +lat_0=0 +lon_0=0]]></geoReference></header>"
            + xodr_text[end + 2:])


def road_lengths(xodr_text: str) -> dict[int, float]:
    """xodr road id → road length (the stop line of an approach is the road's end)."""
    return {int(r.get("id", "-1")): float(r.get("length", "0")) for r in ET.fromstring(xodr_text).iter("road")}


def junction_connectors(xodr: Path) -> dict[str, list[int]]:
    """Junction connector road id → [predecessor road, successor road] from the OpenDRIVE links."""
    out: dict[str, list[int]] = {}
    for road in ET.parse(xodr).getroot().iter("road"):
        if road.get("junction", "-1") == "-1":
            continue
        link = road.find("link")
        pred = link.find("predecessor") if link is not None else None
        succ = link.find("successor") if link is not None else None
        if pred is not None and succ is not None and pred.get("elementType") == "road":
            out[road.get("id", "")] = [int(pred.get("elementId", "-1")), int(succ.get("elementId", "-1"))]
    return out
