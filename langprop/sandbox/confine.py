"""Confinement of a policy process (runs in the forked child, before any policy code).

Layers, strongest first:
- rlimits: RLIMIT_AS (memory), RLIMIT_CPU (SIGXCPU kills it), RLIMIT_CORE=0, RLIMIT_NPROC=0 (no fork,
  no threads) when ``max_processes == 0``, a coarse cap (shared per uid) otherwise;
- as root (RLIMIT_NPROC never applies to uid 0), every uid becomes ``nobody`` except the file-system
  uid, and every capability is dropped (see :func:`_drop_root`): fork, signalling the trainer and
  regaining root are then refused by the kernel, even through ctypes;
- no_new_privs, so an exec could not gain privileges either;
- Python entry points that start processes, signal others or change ids raise ``PermissionError``
  with a clear message (a nicer error than EAGAIN; the kernel limits above are what hold).
Together with the parent's SIGKILL of the whole process group this contains infinite loops, memory
and fork bombs and exit attempts. Files and the network are the jail's job (:mod:`langprop.sandbox.jail`,
entered once by the zygote): the policy sees a read-only root with only Python and the importable
packages, a private /tmp, and no network interface; where the kernel refuses namespaces a warning
says so. When the trainer does not run as root, ids cannot change: the kernel still refuses fork
(RLIMIT_NPROC=0), and in the jail there is no /proc; signals to same-uid processes are refused at
the Python level (a user namespace from the jail would contain them too).
"""

from __future__ import annotations

import io
import logging
import os
import resource
import signal
from typing import Any

log = logging.getLogger(__name__)

NOBODY_UID = 65534
_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_SET_KEEPCAPS = 8
_PR_SET_NO_NEW_PRIVS = 38
_CAP_SETUID = 7
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


_PREPARED: dict[str, Any] = {}  # libc handle and capset structures, made once in the zygote (see prepare)


def prepare() -> None:
    """Load what ``confine_child`` needs before forking, so each policy process does not redo it
    (~0.5 ms a session: dlopen, two ctypes structure classes)."""
    import ctypes

    class _Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class _Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    _PREPARED.update(libc=ctypes.CDLL(None, use_errno=True), header=_Header, data=_Data)


def _libc() -> Any:
    if "libc" not in _PREPARED:
        prepare()
    return _PREPARED["libc"]


def set_parent_undumpable() -> bool:
    """Make the trusted process non-dumpable: a same-uid worker cannot read /proc/<pid>/environ or mem."""
    try:
        return _libc().prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
    except Exception:  # non-Linux
        return False


def _capset(libc: Any, bits: int) -> None:
    import ctypes

    if "header" not in _PREPARED:
        prepare()
    header, data = _PREPARED["header"](_CAP_VERSION_3, 0), (_PREPARED["data"] * 2)()
    data[0].effective = data[0].permitted = bits
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


def _drop_root(libc: Any) -> None:
    """Every uid → nobody, except the file-system uid (0), then no capabilities at all.

    The kernel then refuses fork/clone (RLIMIT_NPROC counts the real uid, and no capability exempts
    us), signals to the trainer and zygote (different uid), and any way back to uid 0 (setfsuid
    cannot change the others). File access stays root's so lazy imports can read the interpreter's
    files, which live under a 0700 home here.
    """
    libc.prctl(_PR_SET_KEEPCAPS, 1, 0, 0, 0)
    os.setgroups([])
    os.setresuid(NOBODY_UID, NOBODY_UID, NOBODY_UID)
    _capset(libc, 1 << _CAP_SETUID)  # kept in the permitted set by KEEPCAPS: just long enough for setfsuid
    libc.setfsuid(0)
    _capset(libc, 0)
    libc.prctl(_PR_SET_KEEPCAPS, 0, 0, 0, 0)


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


def confine_child(memory_mb: int, cpu_s: int, max_processes: int) -> None:
    """Apply every layer to the current (freshly forked) process. Order matters: ids, then rlimits."""
    libc = None
    try:
        libc = _libc()
    except Exception:  # pragma: no cover - no libc
        log.debug("libc unavailable; skipping capability drop")
    if libc is not None and os.geteuid() == 0:
        _drop_root(libc)
    if libc is not None:
        libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)  # the zygote dies → so do we
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # Counted per real uid: with max_processes > 0 the allowance is shared with every process of that
    # uid (as root: every sandbox, all running as nobody), so it is a coarse cap, not a per-policy one.
    resource.setrlimit(resource.RLIMIT_NPROC, (max_processes, max_processes))
    _patch_python_entry_points(allow_processes=max_processes > 0)
