"""``python -m driving.routes generate --out`` that can't be a folder: one line on stderr, exit 2, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def routes_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "driving.routes", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})


def test_out_that_is_a_file_or_under_a_file(tmp_path: Path, town_cache_dir: Path) -> None:
    blocker = tmp_path / "routes"
    blocker.write_text("a file")
    for out_path in (blocker, blocker / "sub"):
        out = routes_cli("generate", "--town", "grid_tls", "--seed", "0", "--count", "3", "--out", str(out_path))
        assert out.returncode == 2, out.stderr[-2000:]
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr[-2000:]
        assert str(out_path) in lines[0] and "not a directory" in lines[0], lines[0]
    assert blocker.read_text() == "a file"


def test_missing_out_folder_is_created(tmp_path: Path, grid_town) -> None:
    out_dir = tmp_path / "a" / "b"
    out = routes_cli("generate", "--town", "grid_tls", "--seed", "0", "--count", "3", "--out", str(out_dir))
    assert out.returncode == 0, out.stderr[-2000:]
    assert sorted(p.suffix for p in out_dir.iterdir()) and all(p.suffix == ".xml" for p in out_dir.iterdir())
