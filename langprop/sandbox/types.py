"""The sandbox's public value types: limits, the result of one call, and its errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["CallResult", "CallStatus", "PolicyCallError", "SandboxError", "SandboxLimits"]

CallStatus = Literal["ok", "exception", "timeout", "crash"]


class SandboxError(RuntimeError):
    """The sandbox itself cannot work (worker does not start, bad harness, unpicklable inputs).

    Never raised for anything a policy does: those are :class:`CallResult` failures.
    """


@dataclass(frozen=True)
class SandboxLimits:
    """Per-worker limits. ``memory_mb`` is the address space (RLIMIT_AS) of the process running a
    policy; ``cpu_s`` its CPU seconds (RLIMIT_CPU) before the kernel kills it (a fresh process runs
    the next calls); ``max_processes=0`` forbids fork/threads in policy code (RLIMIT_NPROC=0 plus
    patched Python entry points), ``>0`` allows them (they are killed with the process group).
    ``max_output_bytes`` caps one call's output (bigger ones become an ``OutputTooLarge`` exception).
    ``isolate`` jails policy processes (no network, read-only view of Python and the packages only,
    private ``/tmp`` of ``tmp_mb``); where the kernel refuses namespaces a warning says which
    protections are off, or, with ``require_jail``, the sandbox refuses to start.
    A policy process starts at ~110 MB of address space with numpy loaded, so keep ``memory_mb``
    well above that. ``cpu_s`` bounds one policy process; a process that has used 75% of it hands
    its remaining calls to a fresh one between two calls.
    """

    call_timeout_s: float = 5.0
    batch_deadline_s: float | None = None
    memory_mb: int = 2048
    cpu_s: int = 60
    stdout_cap_bytes: int = 16_384
    max_processes: int = 0
    max_output_bytes: int = 64 * 1024 * 1024
    # The jail (langprop.sandbox.jail): policy processes see a read-only root holding only the Python
    # installation and importable packages, a private capped /tmp, and no network at all.
    isolate: bool = True
    require_jail: bool = False  # refuse to start where the kernel cannot provide the jail
    tmp_mb: int = 64  # the jail's private /tmp, emptied after every policy session
    fsize_mb: int = 64  # RLIMIT_FSIZE of a policy process

    def __post_init__(self) -> None:
        if not self.call_timeout_s > 0:
            raise SandboxError(f"SandboxLimits.call_timeout_s must be > 0, got {self.call_timeout_s!r}")
        if self.batch_deadline_s is not None and not self.batch_deadline_s > 0:
            raise SandboxError(f"SandboxLimits.batch_deadline_s must be > 0 or None, got {self.batch_deadline_s!r}")
        for name in ("memory_mb", "cpu_s", "stdout_cap_bytes", "max_output_bytes", "tmp_mb", "fsize_mb"):
            if int(getattr(self, name)) <= 0:
                raise SandboxError(f"SandboxLimits.{name} must be > 0, got {getattr(self, name)!r}")
        if self.max_processes < 0:
            raise SandboxError(f"SandboxLimits.max_processes must be >= 0, got {self.max_processes!r}")


@dataclass
class CallResult:
    """One policy call. ``output`` is sanitized plain data (None/bool/int/float/str/bytes/list/tuple/
    dict/np.ndarray); ``traceback`` is the tail only; ``stdout`` holds print output (and stderr),
    capped and then marked ``[truncated]``."""

    status: CallStatus
    output: Any = None
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    stdout: str = ""
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def describe(self) -> str:
        """One line naming what went wrong (or "ok"), for logs and feedback."""
        if self.status == "ok":
            return "ok"
        what = f"{self.error_type}: {self.error_message}" if self.error_type else (self.error_message or "")
        return f"{self.status}: {what}".rstrip(": ")


class PolicyCallError(RuntimeError):
    """Raised by :class:`~langprop.sandbox.SandboxedFunction` when a call does not return normally."""

    def __init__(self, result: CallResult) -> None:
        super().__init__(result.describe())
        self.result = result
