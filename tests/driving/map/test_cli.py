"""The towns / routes command lines: outputs, and one-line errors with a non-zero exit."""

from __future__ import annotations

from pathlib import Path

from driving.routes import read_routes
from driving.routes.__main__ import main as routes_main
from driving.towns.__main__ import main as towns_main


def test_unknown_town_is_one_line_on_stderr(capsys, town_cache_dir: Path) -> None:
    assert towns_main(["build", "Town99", "--cache-dir", str(town_cache_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Town99" in err and "grid_tls" in err


def test_generate_then_check(capsys, grid_town, tmp_path: Path) -> None:
    assert routes_main(["generate", "--town", "grid_tls", "--count", "4", "--seed", "2", "--format", "1.0",
                        "--splits", "train=0.5,test=0.5", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid_tls_test.xml", "grid_tls_train.xml"]
    assert len(read_routes(tmp_path / "grid_tls_train.xml")) == 2
    capsys.readouterr()
    assert routes_main(["check", str(tmp_path / "grid_tls_test.xml")]) == 0
    assert capsys.readouterr().out.count(" m\n") == 2


def test_check_reports_a_broken_file(capsys, tmp_path: Path) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text("<routes><route id='1' town='grid_tls'><waypoint x='1'/></route></routes>")
    assert routes_main(["check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.xml" in err and "route '1'" in err
