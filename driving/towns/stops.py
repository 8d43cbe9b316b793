"""Stop-sign injection: netconvert writes no stop/yield signs, so add ``<signal type="206">`` ourselves.

A road gets one stop sign at its end (the stop line) when any of its driving lanes has a SUMO link
with state ``s`` (priority_stop) or ``w`` (allway_stop). netconvert writes an empty ``<signals/>``
element per road; carla ignores a second ``<signals>`` block, so the element is *replaced* (or, for a
road that already has signals, the sign is appended inside the existing block).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

STOP_STATES = frozenset("sw")
STOP_SIGN_TYPE = "206"


@dataclass(frozen=True)
class StopApproach:
    """A stop-controlled approach: the xodr road ending at the junction and its stopped lanes."""

    id: str  # landmark id: 'stop_<sumo edge id>'
    edge_id: str
    junction_id: str
    road_id: int
    s: float  # stop line: end of the road
    lane_ids: tuple[int, ...]  # carla lane ids (negative) under the sign
    t: float  # lateral offset of the sign from the reference line (right edge of the lanes)


def _signal_xml(stop: StopApproach) -> str:
    return (
        f'            <signal id="{stop.id}" s="{stop.s:.8f}" t="{stop.t:.8f}" orientation="+" dynamic="no" '
        f'zOffset="1.5" country="OpenDRIVE" type="{STOP_SIGN_TYPE}" subtype="-1" value="-1" '
        f'height="0.80" width="0.80" name="Stop">\n'
        f'                <validity fromLane="{max(stop.lane_ids)}" toLane="{min(stop.lane_ids)}"/>\n'
        f"            </signal>\n"
    )


_ROAD_RE = re.compile(r'<road\b[^>]*\bid="(?P<id>[^"]+)"[^>]*>.*?</road>', re.S)


def inject_stop_signs(xodr_text: str, stops: list[StopApproach]) -> str:
    """Return ``xodr_text`` with one stop-sign signal per approach in ``stops``."""
    by_road: dict[str, list[StopApproach]] = {}
    for stop in stops:
        by_road.setdefault(str(stop.road_id), []).append(stop)
    missing = set(by_road)

    def patch(match: re.Match[str]) -> str:
        road_xml, road_id = match.group(0), match.group("id")
        if road_id not in by_road:
            return road_xml
        missing.discard(road_id)
        signals = "".join(_signal_xml(s) for s in by_road[road_id])
        if "<signals/>" in road_xml:
            return road_xml.replace("<signals/>", "<signals>\n" + signals + "        </signals>", 1)
        if "</signals>" in road_xml:
            return road_xml.replace("</signals>", signals + "        </signals>", 1)
        return road_xml.replace("</road>", "    <signals>\n" + signals + "        </signals>\n    </road>", 1)

    out = _ROAD_RE.sub(patch, xodr_text)
    if missing:
        raise ValueError(f"stop-sign injection: roads {sorted(missing)} are not in the OpenDRIVE text")
    return out
