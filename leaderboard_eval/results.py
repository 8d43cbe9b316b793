"""results.json in the leaderboard's ``--checkpoint`` format, written and read back.

Shape (both versions)::

    {"_checkpoint": {"global_record": {...}, "progress": [done, total], "records": [...]},
     "entry_status": ..., "eligible": ..., "sensors": [...], "values": [...], "labels": [...]}

2.x (master / leaderboard-2.0 / leaderboard-2.1): records ``index, route_id
'RouteScenario_<id>_rep<r>', status, num_infractions, infractions (12 keys), scores, meta``; the
global record has ``scores_mean`` / ``scores_std_dev``; 15 labels; entry status 'Finished' (or
'Crashed' / 'Rejected' when a route says so, 'Invalid' when the data is incomplete); written with
``indent=4``. 1.0: records without ``num_infractions`` (9 infraction keys, route id
'RouteScenario_<id>'), global ``scores``; 12 values formatted ``{:.3f}``; entry status 'Finished',
'Finished with missing data' or 'Finished with agent errors'; written with ``indent=4,
sort_keys=True``. Files are written atomically (temp file, fsync, rename).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from driving.criteria.events import check_version
from driving.scoring import LABELS, RouteRecord, global_record, global_values
from langprop.atomic import atomic_write_json

SENSOR_ICONS = {
    "sensor.camera.rgb": "carla_camera",
    "sensor.lidar.ray_cast": "carla_lidar",
    "sensor.other.radar": "carla_radar",
    "sensor.other.gnss": "carla_gnss",
    "sensor.other.imu": "carla_imu",
    "sensor.opendrive_map": "carla_opendrive_map",
    "sensor.speedometer": "carla_speedometer",
}
ENTRY_STATUS_VALUES = ["Started", "Finished", "Rejected", "Crashed", "Invalid"]
ELIGIBLE_VALUES = {"Started": False, "Finished": True, "Rejected": False, "Crashed": False, "Invalid": False}
DEFAULT_SENSORS = ("sensor.speedometer",)


class ResultsFileError(ValueError):
    """A results.json that cannot be read or lacks a field; the message names the file and field."""


def sensor_icons(sensors: Sequence[str | dict]) -> list[str]:
    """Sensor specs (dicts with 'type', type strings, or icon names) -> the leaderboard's icon names."""
    icons = []
    for s in sensors:
        kind = s["type"] if isinstance(s, dict) else str(s)
        icons.append(SENSOR_ICONS.get(kind, kind))
    return icons


def _entry_status_2x(records: Sequence[RouteRecord], progress: list[int], sensors: list[str]) -> str:
    status = "Finished"
    for r in records:
        if "Simulation crashed" in r.status:
            status = "Crashed"
        elif "Agent's sensors were invalid" in r.status:
            status = "Rejected"
    crashed = status == "Crashed"
    if not sensors:
        return "Invalid"  # "Missing 'sensors' data"
    if not crashed and (progress[0] != progress[1] or progress[0] != len(records)):
        return "Invalid"  # "'progress' data doesn't match its expected value"
    if any(r.status == "Started" for r in records):
        return "Invalid"  # "Found a route record with missing data"
    return status


def _entry_status_1_0(records: Sequence[RouteRecord], progress: list[int]) -> tuple[str, bool]:
    if len(records) != progress[1] or progress[0] != progress[1]:
        return "Finished with missing data", False
    for r in records:
        if "Agent" in r.status:
            return "Finished with agent errors", True
    return "Finished", True


def results_dict(
    records: Sequence[RouteRecord],
    version: str = "2.0",
    sensors: Sequence[str | dict] = DEFAULT_SENSORS,
    entry_status: str | None = None,
    total_routes: int | None = None,
) -> dict[str, Any]:
    """The results.json content. With fewer records than ``total_routes`` the file is a partial
    checkpoint (no global record, entry status 'Started'), as the leaderboard writes between routes."""
    version = check_version(version)
    records = sorted(records, key=lambda r: r.index)
    total = len(records) if total_routes is None else int(total_routes)
    progress = [len(records), total]
    icons = sensor_icons(sensors)
    data: dict[str, Any] = {
        "_checkpoint": {"global_record": {}, "progress": progress, "records": [r.to_json() for r in records]},
        "entry_status": "Started", "eligible": False, "sensors": icons, "values": [], "labels": [],
    }
    if len(records) >= total:
        glob = global_record(records, version, total)
        data["_checkpoint"]["global_record"] = glob
        data["values"] = global_values(glob, version)
        data["labels"] = list(LABELS[version])
        if version == "1.0":
            status, eligible = _entry_status_1_0(records, progress)
        else:
            status = _entry_status_2x(records, progress, icons)
            eligible = ELIGIBLE_VALUES[status]
        data["entry_status"], data["eligible"] = status, eligible
    if entry_status is not None:
        if version != "1.0" and entry_status not in ENTRY_STATUS_VALUES:
            raise ValueError(f"entry_status {entry_status!r} is not one of {ENTRY_STATUS_VALUES}")
        data["entry_status"] = entry_status
        data["eligible"] = ELIGIBLE_VALUES.get(entry_status, entry_status.startswith("Finished"))
    return data


def write_results(
    path: str | Path,
    records: Sequence[RouteRecord],
    version: str = "2.0",
    sensors: Sequence[str | dict] = DEFAULT_SENSORS,
    entry_status: str | None = None,
    total_routes: int | None = None,
) -> dict[str, Any]:
    """Write results.json atomically; returns the written dict."""
    version = check_version(version)
    data = results_dict(records, version, sensors, entry_status, total_routes)
    atomic_write_json(path, data, indent=4, sort_keys=version == "1.0")
    return data


_REQUIRED = ("_checkpoint", "entry_status", "eligible", "sensors", "values", "labels")
_RECORD_FIELDS = ("route_id", "index", "status", "infractions", "scores", "meta")


def detect_version(data: dict[str, Any]) -> str:
    """'1.0' or '2.0' from a results dict (2.1 files are shaped like 2.0)."""
    labels = data.get("labels") or []
    if labels:
        return "1.0" if len(labels) == len(LABELS["1.0"]) else "2.0"
    records = data.get("_checkpoint", {}).get("records") or []
    if records:
        return "2.0" if "num_infractions" in records[0] else "1.0"
    return "2.0"


def read_results(path: str | Path) -> dict[str, Any]:
    """Load and check a results.json (ours or the leaderboard's); raises ``ResultsFileError``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ResultsFileError(f"results file {path} cannot be read: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ResultsFileError(f"results file {path} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ResultsFileError(f"results file {path}: top level is not an object")
    for key in _REQUIRED:
        if key not in data:
            raise ResultsFileError(f"results file {path}: missing field '{key}'")
    ckpt = data["_checkpoint"]
    for key in ("global_record", "progress", "records"):
        if key not in ckpt:
            raise ResultsFileError(f"results file {path}: missing field '_checkpoint.{key}'")
    for i, rec in enumerate(ckpt["records"]):
        for key in _RECORD_FIELDS:
            if key not in rec:
                raise ResultsFileError(f"results file {path}: missing field '_checkpoint.records[{i}].{key}'")
        for key in ("score_route", "score_penalty", "score_composed"):
            if key not in rec["scores"]:
                raise ResultsFileError(f"results file {path}: missing field '_checkpoint.records[{i}].scores.{key}'")
    if data["values"] and len(data["values"]) != len(data["labels"]):
        raise ResultsFileError(f"results file {path}: 'values' and 'labels' differ in length")
    return data


def read_records(path: str | Path) -> list[RouteRecord]:
    """The route records of a results.json (for resuming or re-scoring)."""
    data = read_results(path)
    version = detect_version(data)
    return [RouteRecord.from_json(r, version) for r in data["_checkpoint"]["records"]]
