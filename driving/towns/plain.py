"""Plain-XML networks netgenerate cannot make: a grid of single-lane-ring roundabouts.

Each grid site is a one-way (counter-clockwise, right-hand traffic) ring of four nodes joined by arc
edges; neighbouring rings are linked by two-way arms and outer rings get dead-end arms so every ring
has four legs. ``netconvert --roundabouts.guess`` then recognises every ring as a roundabout (ring
edges have the higher priority, entering traffic yields).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

NODE_FILE, EDGE_FILE = "plain.nod.xml", "plain.edg.xml"
_DIRS = {0: (1, 0), 1: (0, 1), 2: (-1, 0), 3: (0, -1)}  # ring node k sits at 90·k degrees (SUMO frame)


def write_roundabout_grid(params: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Write node and edge files for ``params`` (number, spacing, radius, attach_length, lanes, speed)."""
    n, spacing, radius = int(params["number"]), float(params["spacing"]), float(params["radius"])
    attach, lanes, speed = float(params["attach_length"]), int(params["lanes"]), float(params["speed"])
    nodes: list[tuple[str, float, float, str]] = []
    edges: list[tuple[str, str, str, list[tuple[float, float]] | None, int]] = []

    def ring(i: int, j: int, k: int) -> str:
        return f"R{i}_{j}_{k}"

    for i in range(n):
        for j in range(n):
            cx, cy = i * spacing, j * spacing
            for k in range(4):
                a = math.radians(90 * k)
                nodes.append((ring(i, j, k), cx + radius * math.cos(a), cy + radius * math.sin(a), "priority"))
            for k in range(4):
                arc = [(cx + radius * math.cos(math.radians(90 * k + d)), cy + radius * math.sin(math.radians(90 * k + d)))
                       for d in range(0, 91, 3)]  # 3° chords: < 1 cm off the circle
                edges.append((f"ring{i}_{j}_{k}", ring(i, j, k), ring(i, j, (k + 1) % 4), arc, 10))
                dx, dy = _DIRS[k]
                ni, nj = i + dx, j + dy
                if 0 <= ni < n and 0 <= nj < n:
                    if k in (0, 1):  # each link once: east and north
                        edges.append((f"arm{i}_{j}to{ni}_{nj}", ring(i, j, k), ring(ni, nj, (k + 2) % 4), None, 5))
                        edges.append((f"arm{ni}_{nj}to{i}_{j}", ring(ni, nj, (k + 2) % 4), ring(i, j, k), None, 5))
                elif attach > 0:
                    end = f"F{i}_{j}_{k}"
                    nodes.append((end, cx + (radius + attach) * dx, cy + (radius + attach) * dy, "dead_end"))
                    edges.append((f"{end}_in", end, ring(i, j, k), None, 5))
                    edges.append((f"{end}_out", ring(i, j, k), end, None, 5))
    node_file, edge_file = out_dir / NODE_FILE, out_dir / EDGE_FILE
    node_file.write_text("<nodes>\n" + "".join(
        f'    <node id="{a}" x="{x:.3f}" y="{y:.3f}" type="{t}"/>\n' for a, x, y, t in nodes) + "</nodes>\n")
    lines = []
    for eid, a, b, shape, priority in edges:
        extra = f' shape="{" ".join(f"{x:.3f},{y:.3f}" for x, y in shape)}"' if shape else ""
        lines.append(f'    <edge id="{eid}" from="{a}" to="{b}" priority="{priority}" numLanes="{lanes}" '
                     f'speed="{speed}"{extra}/>\n')
    edge_file.write_text("<edges>\n" + "".join(lines) + "</edges>\n")
    return node_file, edge_file
