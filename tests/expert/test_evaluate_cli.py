"""``python -m expert.evaluate`` as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def evaluate(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "expert.evaluate", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.mark.parametrize(("args", "needle"), [
    (("--towns", "atlantis"), "atlantis"),
    (("--version", "3.0"), "3.0"),
    (("--count-per-town", "0"), "--count-per-town"),
    (("not_a_field=1",), "not_a_field"),
    (("junction_speed=fast",), "junction_speed"),
    (("--explain", "--version", "1.0"), "--explain"),
])
def test_bad_input_is_one_line_on_stderr_and_exit_2(tmp_path: Path, args: tuple[str, ...], needle: str) -> None:
    out = evaluate("--out", str(tmp_path / "out"), *args)
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert lines[0].startswith("expert.evaluate: error: ") and needle in lines[0], lines[0]


@pytest.mark.slow
def test_evaluates_a_small_route_set_and_prints_the_mean_driving_score(tmp_path: Path, town_cache_dir: Path) -> None:
    out = evaluate("--towns", "grid_tls,spider_prio", "--count-per-town", "1", "--out", str(tmp_path / "eval"),
                   "--min-length", "120", "--max-length", "200", "--quiet", "--explain", "--reference", timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    records = results["_checkpoint"]["records"]
    assert len(records) == 2
    assert "grid_tls" in records[0]["route_id"] and "spider_prio" in records[1]["route_id"]
    lines = out.stdout.strip().splitlines()
    assert "Leaderboard results" in out.stdout
    assert lines[-1].startswith("mean DS: ") and "over 2 routes (version 2.0)" in lines[-1], lines[-1]
    mean = float(lines[-1].split()[2])
    assert mean == pytest.approx(results["_checkpoint"]["global_record"]["scores_mean"]["score_composed"], abs=0.01)
    assert any(line.startswith("grid_tls: mean DS") for line in lines)
    explained = json.loads((tmp_path / "eval" / "explain.json").read_text())
    assert [row["route_id"] for row in explained] == [r["route_id"] for r in records]
    assert "Failed MinimumSpeed checkpoints" in out.stdout
    # --reference: SUMO's own driver drove the same routes, scored beside the expert
    reference = json.loads((tmp_path / "eval" / "reference" / "results.json").read_text())
    assert [r["route_id"] for r in reference["_checkpoint"]["records"]] == [r["route_id"] for r in records]
    ref_mean = reference["_checkpoint"]["global_record"]["scores_mean"]["score_composed"]
    line = next(x for x in lines if x.startswith("reference, SUMO's own driver on the same routes: mean DS "))
    assert float(line.split("mean DS ")[1].split()[0]) == pytest.approx(ref_mean, abs=0.01)
    assert any(x.startswith("grid_tls: mean DS") and "(SUMO's driver: " in x for x in lines)
    alone = next(x for x in lines if x.startswith("min-speed penalties alone"))
    ref_alone, expert_alone = (float(x.split()[-1]) for x in alone.split(", "))
    # without its other infractions a route scores at least its DS
    assert ref_alone >= ref_mean - 0.01 and expert_alone >= mean - 0.01
