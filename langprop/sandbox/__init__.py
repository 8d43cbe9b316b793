"""Run untrusted policy code in confined worker processes.

``SandboxPool.run`` spreads (policy × samples) jobs over a pool of workers; ``SandboxedFunction`` puts
one policy behind one worker. Every call ends as a :class:`CallResult` — ok, exception, timeout or
crash — and nothing a policy does reaches the trainer's process except sanitized plain data.
See ``zygote.py`` for the process model and ``confine.py`` for the limits applied.
"""

from langprop.sandbox.function import SandboxedFunction
from langprop.sandbox.pool import SandboxPool
from langprop.sandbox.types import CallResult, CallStatus, PolicyCallError, SandboxError, SandboxLimits

__all__ = [
    "CallResult",
    "CallStatus",
    "PolicyCallError",
    "SandboxError",
    "SandboxLimits",
    "SandboxPool",
    "SandboxedFunction",
]
