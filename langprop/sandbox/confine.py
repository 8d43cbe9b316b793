"""Confinement of a policy process (runs in the forked child, before any policy code).

Layers, strongest first:
- rlimits: RLIMIT_AS (memory), RLIMIT_CPU (SIGXCPU kills it), RLIMIT_CORE=0, RLIMIT_NPROC=0 (no fork,
  no threads) when ``max_processes == 0``;
- as root, RLIMIT_NPROC never applies to uid 0, so the real uid becomes ``nobody`` (the limit is
  checked against the real uid) and every capability is dropped, with no_new_privs so an exec cannot
  regain them. The effective uid stays 0 because the interpreter lives under a 0700 home here and
  lazy imports must still read it;
- Python entry points that start processes, signal others or change ids raise ``PermissionError``
  with a clear message (``ctypes`` is made unimportable so the patches are not trivially bypassed).
Together with the parent's SIGKILL of the whole process group this contains infinite loops, memory
and fork bombs and exit attempts of ordinary (LLM-written) code. It is not a jail against a
deliberate attacker: file-system access is the worker's uid's; run the trainer in a container.
"""

from __future__ import annotations

import io
import logging
import os
import resource
import signal
import sys
from typing import Any

log = logging.getLogger(__name__)

NOBODY_UID = 65534
_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_SET_NO_NEW_PRIVS = 38
_CAP_VERSION_3 = 0x20080522


class CappedWriter(io.TextIOBase):
    """sys.stdout/sys.stderr replacement: keeps the first ``cap`` characters of a call's output."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.parts: list[str] = []
        self.size = 0
        self.truncated = False

    def writable(self) -> bool:
        return True

    def write(self, s: Any) -> int:
        s = s if type(s) is str else str(s)
        room = self.cap - self.size
        if room > 0:
            piece = s[:room]
            self.parts.append(piece)
            self.size += len(piece)
        if len(s) > max(room, 0):
            self.truncated = True
        return len(s)

    def take(self) -> str:
        text = "".join(self.parts)
        if self.truncated:
            text += "\n[truncated]"
        self.parts, self.size, self.truncated = [], 0, False
        return text


def _libc() -> Any:
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def set_parent_undumpable() -> bool:
    """Make the trusted process non-dumpable: a same-uid worker cannot read /proc/<pid>/environ or mem."""
    try:
        return _libc().prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
    except Exception:  # non-Linux
        return False


def _drop_root(libc: Any) -> None:
    """Real uid → nobody (so RLIMIT_NPROC counts against it), then drop every capability."""
    import ctypes

    os.setgroups([])
    os.setresuid(NOBODY_UID, 0, 0)

    class _Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class _Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    header, data = _Header(_CAP_VERSION_3, 0), (_Data * 2)()
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


def _denied(what: str) -> Any:
    def deny(*_args: Any, **_kwargs: Any) -> Any:
        raise PermissionError(f"{what} is not allowed inside the LangProp sandbox")

    return deny


def _patch_python_entry_points(allow_processes: bool) -> None:
    import _thread
    import posix
    import subprocess
    import threading

    names = ["kill", "killpg", "setuid", "setresuid", "setreuid", "seteuid", "setgid", "setresgid", "setregid"]
    if not allow_processes:
        names += [
            "fork", "forkpty", "posix_spawn", "posix_spawnp", "system", "popen", "execv", "execve",
            "execl", "execle", "execlp", "execlpe", "execvp", "execvpe", "spawnv", "spawnve", "spawnl",
            "spawnle", "spawnlp", "spawnlpe", "spawnvp", "spawnvpe", "fexecve",
        ]
        subprocess.Popen = _denied("subprocess.Popen")  # type: ignore[misc]
        try:
            import _posixsubprocess

            _posixsubprocess.fork_exec = _denied("_posixsubprocess.fork_exec")
        except ImportError:
            pass
        threading.Thread.start = _denied("starting a thread")  # type: ignore[method-assign]
        _thread.start_new_thread = _denied("starting a thread")
    for name in names:
        for module in (os, posix):
            if hasattr(module, name):
                setattr(module, name, _denied(f"os.{name}"))
    signal.pthread_kill = _denied("signal.pthread_kill")
    for name in ("ctypes", "_ctypes", "ctypes.util"):
        sys.modules[name] = None  # type: ignore[assignment]


def confine_child(memory_mb: int, cpu_s: int, max_processes: int) -> None:
    """Apply every layer to the current (freshly forked) process. Order matters: ids, then rlimits."""
    libc = None
    try:
        libc = _libc()
    except Exception:  # pragma: no cover - no libc
        log.debug("libc unavailable; skipping capability drop")
    if libc is not None and os.geteuid() == 0 and max_processes == 0:
        _drop_root(libc)
    if libc is not None:
        libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)  # the zygote dies → so do we
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if max_processes == 0:
        resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    _patch_python_entry_points(allow_processes=max_processes > 0)
