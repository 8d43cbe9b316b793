"""Opt-in: our criteria and results.json against the leaderboard's own code (crosscheck_leaderboard.py).

Needs the sources, which the default test run does not have. Point CROSSCHECK_TREES at a directory
holding, per branch B in leaderboard-1.0 / leaderboard-2.0 / leaderboard-2.1, ``sr-B`` (a
scenario_runner tree with srunner/scenariomanager) and ``lb-B`` (a leaderboard tree with
leaderboard/utils), e.g. ``git -C scenario_runner archive B srunner/scenariomanager | tar -x -C
trees/sr-B``, then run ``pytest -m slow tests/driving/criteria/test_crosscheck_leaderboard.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("crosscheck_leaderboard.py")


@pytest.mark.slow
@pytest.mark.parametrize("version", ["1.0", "2.0", "2.1"])
def test_matches_the_leaderboard_code(version: str) -> None:
    trees = os.environ.get("CROSSCHECK_TREES")
    branch = f"leaderboard-{version}"
    if not trees or not (Path(trees) / f"sr-{branch}").is_dir():
        pytest.skip("set CROSSCHECK_TREES to the leaderboard / scenario_runner source trees (see the docstring)")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--version", version, "--scenario-runner", str(Path(trees) / f"sr-{branch}"),
         "--leaderboard", str(Path(trees) / f"lb-{branch}")],
        capture_output=True, text=True, timeout=600, cwd=SCRIPT.parents[3])
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "19 of 19 scenarios agree" in result.stdout and "results.json identical" in result.stdout
