"""Project-wide pytest settings and the fixtures several test packages share; the rest live in each
subpackage's conftest.py."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Candidate code and simulators must never see real keys during tests.
for _name in list(os.environ):
    if _name.endswith("_API_KEY") or _name.startswith("OPENAI_"):
        os.environ.pop(_name)


@pytest.fixture(scope="session")
def town_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Private town cache for the session, also exported as LANGPROP_DRIVE_CACHE for the code under test
    (and the worker processes it spawns)."""
    path = tmp_path_factory.mktemp("town-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LANGPROP_DRIVE_CACHE", str(path))
        yield path
