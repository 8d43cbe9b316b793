"""``python -m leaderboard_eval`` as a user runs it: a subprocess, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.driving.runner.conftest import REPO, assert_one_line_error, cli


def test_malformed_route_file_is_one_clear_line(tmp_path, grid_town):
    bad = tmp_path / "routes.xml"
    bad.write_text("<routes><route id='0' town='grid_tls'><waypoints><position x='1' y=</routes>")
    assert_one_line_error(cli("--routes", str(bad), "--checkpoint", str(tmp_path / "r.json")), "routes.xml")
    assert not (tmp_path / "r.json").exists()


def test_unknown_towns_are_one_clear_line(tmp_path, grid_town):
    assert_one_line_error(cli("--town", "Atlantis", "--count", "1"), "Atlantis", "grid_tls")
    routes = tmp_path / "carla.xml"
    routes.write_text('<routes><route id="0" town="Town01"><waypoints><position x="1" y="2" z="0"/>'
                      '<position x="30" y="2" z="0"/></waypoints></route></routes>')
    assert_one_line_error(cli("--routes", str(routes)), "Town01")


def test_bad_overrides_and_flags_are_one_clear_line(tmp_path, grid_town, capsys):
    # In-process (same code path as the subprocess runs above, without five interpreter starts).
    import signal

    from leaderboard_eval.__main__ import main

    off_map = tmp_path / "off_map.xml"
    off_map.write_text('<routes><route id="0" town="grid_tls"><waypoints><position x="1" y="2" z="0"/>'
                       '<position x="90000" y="2" z="0"/></waypoints></route></routes>')
    previous = signal.getsignal(signal.SIGTERM)
    try:
        for argv, needles in ((["--town", "grid_tls", "world.bogus=1"], ("world", "bogus")),
                              (["--town", "grid_tls", "--version", "3.7"], ("3.7",)),
                              (["--town", "grid_tls", "--routes-subset", "5-2"], ("5-2",)),
                              (["--town", "grid_tls", "--driver", "no.such.Driver"], ("no.such.Driver",)),
                              (["routes=nope"], ("routes/nope",)),
                              (["--routes", str(tmp_path / "nope.xml")], ("nope.xml",)),
                              (["--routes", str(off_map)], ("route '0'", "grid_tls")),  # keypoint off the map
                              (["--town", "grid_tls", "--count", "0"], ("count",)),
                              (["--show", str(off_map)], ("off_map.xml",))):
            code = main([*argv, "--checkpoint", str(tmp_path / "r.json")])
            err = capsys.readouterr().err
            assert_one_line_error(subprocess.CompletedProcess(argv, code, "", err), *needles)
        with pytest.raises(SystemExit) as exit_info:
            main(["--resume", "maybe"])  # argparse: not a boolean
        assert exit_info.value.code == 2
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert not (tmp_path / "r.json").exists()


def test_generated_routes_with_the_route_follower_then_resume(tmp_path, grid_town):
    ckpt = tmp_path / "results.json"
    args = ("--town", "grid_tls", "--count", "2", "--seed", "3", "--checkpoint", str(ckpt), "--quiet",
            "--blocked-time", "20",
            "routes.min_length=50", "routes.max_length=120", "world.n_vehicles=6", "world.n_pedestrians=3")
    first = cli(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    data = json.loads(ckpt.read_text())
    assert set(data) == {"_checkpoint", "entry_status", "eligible", "sensors", "values", "labels"}
    records = data["_checkpoint"]["records"]
    assert len(records) == 2 and data["_checkpoint"]["progress"] == [2, 2]
    assert all(r["route_id"].startswith("RouteScenario_") and r["status"] for r in records)
    assert data["entry_status"] == "Finished"
    assert "Leaderboard results" in first.stdout and records[0]["route_id"] in first.stdout
    again = cli(*args, "--resume")
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(ckpt.read_text())["_checkpoint"]["records"] == records  # nothing re-run
    from leaderboard_eval.__main__ import main

    assert main(["--show", str(ckpt)]) == 0  # the table of an existing file, nothing run


@pytest.mark.parametrize("value", ["false", "0"])
def test_resume_false_really_means_false(value, tmp_path):
    # The leaderboard's --resume is type=bool, so "--resume False" resumed; ours parses the value.
    from leaderboard_eval.__main__ import build_parser, flag_overrides

    args = build_parser().parse_args(["--resume", value])
    assert "resume=false" in flag_overrides(args)
    assert "resume=true" in flag_overrides(build_parser().parse_args(["--resume"]))


def test_sigint_writes_results_so_far_and_exits_130(tmp_path, grid_town):
    import signal
    import time

    ckpt = tmp_path / "results.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "leaderboard_eval", "--town", "grid_tls", "--count", "4", "--seed", "5",
         "--checkpoint", str(ckpt), "--quiet", "--blocked-time", "20", "routes.max_length=150",
         "world.n_vehicles=6", "world.n_pedestrians=3"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if ckpt.exists() and json.loads(ckpt.read_text() or "{}").get("_checkpoint", {}).get("records"):
                break  # the first route is recorded: interrupt during a later one
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "interrupted" in err and "--resume" in err
    data = json.loads(ckpt.read_text())
    done, total = data["_checkpoint"]["progress"]
    assert 1 <= done < total == 4
    assert data["entry_status"] == "Started"


def test_flags_compose_into_the_hydra_config():
    from leaderboard_eval.__main__ import build_parser, compose_config, flag_overrides

    odd = "/tmp/my routes/it's [v2]=x.xml"
    args = build_parser().parse_intermixed_args(
        ["world.n_vehicles=7", "--routes", odd, "--routes-subset", "0-4,7", "--driver", "pkg.mod:MyDriver",
         "--version", "2.1", "--resume", "--repetitions", "3", "--blocked-time", "9"])
    cfg = compose_config(flag_overrides(args) + list(args.overrides))
    assert cfg.routes.source == "file" and cfg.routes.file == odd
    assert cfg.routes_subset == "0-4,7" and cfg.repetitions == 3 and cfg.resume is True
    assert cfg.driver._target_ == "pkg.mod.MyDriver" and str(cfg.version) == "2.1"
    assert set(cfg.driver) == {"_target_"}  # no keyword argument of the default driver follows a class path
    assert cfg.world.n_vehicles == 7 and cfg.blocked_time_s == 9.0
    default = compose_config([])
    assert default.routes.source == "generated" and default.driver._target_ == "driving.drivers.RouteFollower"
    assert default.blocked_time_s is None and default.resume is False  # the leaderboard's 180 s rule
    from leaderboard_eval.__main__ import driver_factory_from, world_config_from

    world = world_config_from(compose_config(["world.n_vehicles=5"]))  # conf/world keys match the dataclass
    assert type(world).__name__ == "EmbeddedWorldConfig" and world.n_vehicles == 5

    driver = driver_factory_from(compose_config(["driver.cruise_speed=9", "+driver.lookahead_min=5"]))()
    assert driver.config.cruise_speed == 9.0 and driver.config.lookahead_min == 5.0
