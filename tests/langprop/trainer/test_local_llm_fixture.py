"""The ``local_llm`` fixture skips without llama_cpp, but FAILS when LANGPROP_REQUIRE_LOCAL_LLM=1 (CI):
a CI run must not go green because the real-model tests quietly skipped."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

USER = '''
import sys
sys.modules["llama_cpp"] = None  # makes `import llama_cpp` raise ImportError, as when it is not installed
from langprop.llm.testing import local_llm  # noqa: E402,F401


def test_uses_the_real_model(local_llm):  # noqa: F811
    pass
'''


def _run(tmp_path, require: str | None) -> subprocess.CompletedProcess:
    (tmp_path / "test_user.py").write_text(USER)
    env = {k: v for k, v in os.environ.items() if k != "LANGPROP_REQUIRE_LOCAL_LLM"}
    if require is not None:
        env["LANGPROP_REQUIRE_LOCAL_LLM"] = require
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
         str(tmp_path / "test_user.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )


def test_without_the_variable_a_missing_llama_cpp_skips(tmp_path):
    proc = _run(tmp_path, None)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 skipped" in proc.stdout and "llama_cpp is not importable" in proc.stdout


@pytest.mark.parametrize("value", ["1"])
def test_with_the_variable_a_missing_llama_cpp_fails(tmp_path, value):
    proc = _run(tmp_path, value)
    assert proc.returncode != 0
    assert "1 error" in proc.stdout and "LANGPROP_REQUIRE_LOCAL_LLM=1 but llama_cpp is not importable" in proc.stdout
