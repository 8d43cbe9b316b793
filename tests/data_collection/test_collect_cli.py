"""python -m data_collection as a user runs it: errors, kill -9 and Ctrl-C mid-run, then resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from data_collection import read_episode
from tests.data_collection.collect_support import (
    REPO,
    ROUTE_ARGS,
    cli,
    cli_env,
    town_cache,  # noqa: F401 - a fixture
)

pytestmark = pytest.mark.usefixtures("town_cache")


def assert_one_line_error(out: subprocess.CompletedProcess, *needles: str) -> None:
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert lines[0].startswith("data_collection: error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_bad_inputs_are_one_line_and_exit_2(tmp_path):
    assert_one_line_error(cli("--town", "atlantis", "--out", str(tmp_path / "a")), "unknown town 'atlantis'")
    bad_xml = tmp_path / "routes.xml"
    bad_xml.write_text("<routes><route id='0' town='grid_tls'><waypoints>")
    assert_one_line_error(cli("--routes", str(bad_xml), "--out", str(tmp_path / "b")), str(bad_xml))
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert_one_line_error(cli(*ROUTE_ARGS, "--out", str(blocker / "data")), "--out", str(blocker / "data"))
    assert_one_line_error(cli(*ROUTE_ARGS, "--out", str(tmp_path / "c"), "--record-every", "0"), "record_every")
    assert_one_line_error(cli(*ROUTE_ARGS, "--out", str(tmp_path / "c"), "world.n_wheels=3"), "n_wheels")
    assert_one_line_error(cli(*ROUTE_ARGS, "--out", str(tmp_path / "c"), "--backend", "slurm"), "slurm")
    assert_one_line_error(cli(*ROUTE_ARGS, "--out", str(tmp_path / "c"), "--labeller", "route_follower"),
                          "labeller", "ActionDriver")
    assert not list((tmp_path / "c").glob("*.h5"))


def _start(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "data_collection", *ROUTE_ARGS, "--count", "5", "--out", str(out),
                             "--quiet", *extra], cwd=REPO, env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _recorded(out: Path) -> int:
    try:
        return int(json.loads((out / "results.json").read_text())["_checkpoint"]["progress"][0])
    except (OSError, ValueError, KeyError, IndexError):
        return 0


def _wait_for_first_file(proc: subprocess.Popen, out: Path, timeout: float = 120) -> list[psutil.Process]:
    """Poll until a complete episode file exists; returns the collector's child processes then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        # a file is renamed into place before the collector records it in results.json: wait for both
        if list(out.glob("*.h5")) and _recorded(out) >= 1:
            return psutil.Process(proc.pid).children(recursive=True)
        time.sleep(0.02)
    proc.kill()
    raise AssertionError("no episode file appeared")


def test_kill_9_mid_run_then_rerun_keeps_finished_files_and_completes_the_set(tmp_path):
    out = tmp_path / "data"
    proc = _start(out, "--driver", "route_follower", "--labeller", "expert")
    children = _wait_for_first_file(proc, out)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    finished = {p.name: p.read_bytes() for p in out.glob("*.h5")}
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, "worker processes outlived the killed collector"
    assert {p.name for p in out.glob("*.h5")} == set(finished)  # nothing finished after the kill
    assert 1 <= len(finished) < 5
    rerun = cli(*ROUTE_ARGS, "--count", "5", "--out", str(out), "--driver", "route_follower", "--labeller", "expert",
                "--quiet")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    files = sorted(out.glob("*.h5"))
    assert len(files) == 5 and not list(out.glob("*.partial"))
    for name, data in finished.items():
        assert (out / name).read_bytes() == data
    for f in files:
        assert len(read_episode(f)) > 0
    results = json.loads((out / "results.json").read_text())
    assert results["_checkpoint"]["progress"] == [5, 5]
    assert "5 episode files" in rerun.stdout and "mean" in rerun.stdout


def test_ctrl_c_stops_the_workers_and_leaves_only_complete_files(tmp_path):
    out = tmp_path / "data"
    proc = _start(out, "--workers", "2")
    children = _wait_for_first_file(proc, out)
    os.killpg(proc.pid, signal.SIGINT)  # the terminal signals the whole foreground group
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr[-3000:]
    assert "interrupted" in stderr and "Traceback" not in stderr
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive
    assert not list(out.glob("*.partial"))  # the interrupted writers deleted theirs
    files = list(out.glob("*.h5"))
    assert files and all(len(read_episode(f)) > 0 for f in files)
    results = json.loads((out / "results.json").read_text())
    assert results["_checkpoint"]["progress"][0] == len(files)


def test_show_rebuilds_the_summary_from_the_files(tmp_path):
    out = tmp_path / "data"
    first = cli(*ROUTE_ARGS, "--count", "2", "--out", str(out), "--record-every", "10", "--quiet")
    assert first.returncode == 0, first.stderr[-3000:]
    (out / "results.json").unlink()
    shown = cli("--show", str(out))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.count("RouteScenario_grid_tls_0_") == 2 and "mean" in shown.stdout
    assert "2 episode files" in shown.stdout
    assert_one_line_error(cli("--show", str(tmp_path)), "no complete episode file")
