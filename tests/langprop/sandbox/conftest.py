"""One shared pool for the sandbox tests: starting workers costs ~0.5 s each."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from langprop.sandbox import SandboxLimits, SandboxPool

LIMITS = SandboxLimits(call_timeout_s=1.0, memory_mb=1024, cpu_s=20, stdout_cap_bytes=2000)


@pytest.fixture(scope="package")
def pool() -> Iterator[SandboxPool]:
    with SandboxPool(n_workers=2, limits=LIMITS) as p:
        yield p
