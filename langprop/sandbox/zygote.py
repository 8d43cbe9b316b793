"""Worker process: a clean pre-imported template that forks one confined process per policy session.

Run as ``python -m langprop.sandbox.zygote CTL_FD RES_FD SHM_FD`` by :mod:`langprop.sandbox.worker`.
The zygote itself never runs policy code, so it is reused for the whole life of the pool: after a
timeout the parent SIGKILLs the session's process group and the next session is a fresh fork (a few
ms) instead of a fresh interpreter (~0.3 s). Nothing one policy does (monkeypatching, global state,
leaked memory) survives into the next session.

Channels: fd 0 carries trusted commands from the parent to the zygote (samples, sessions; a session
message may carry the session's first calls, which the forked process then holds from the start); each
session gets a pipe of its own for further ``calls``/``end`` frames, whose write end the zygote hands to
the parent with the ``started`` report (SCM_RIGHTS), so a policy reading its stdin can only ever
disturb its own session; ``CTL_FD`` (a SOCK_SEQPACKET socket) carries the zygote's own reports
(closed in the session, so a policy cannot forge them); ``RES_FD`` carries the session's per-call
results, flushed in batches; ``SHM_FD`` is a shared page where the session writes which call is
running since when, so the parent can enforce per-call timeouts without a message per call.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import importlib
import linecache
import mmap
import os
import pickle
import select
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from langprop.sandbox.wire import HEADER, dumps, frame, to_plain

PROGRESS_BYTES = 16
IDLE = -1
RECYCLE_EXIT = 75  # a session that used most of its CPU allowance ends itself between two calls
# Results go back in batches; a batch is flushed once it holds this much work, so a kill loses little.
_FLUSH_WORK_S = 0.02
_FLUSH_EVERY_N = 256
_TRACEBACK_CHARS = 3000
_POLICY_FILE = "<policy>"
# Sample inputs kept in the zygote, keyed by content digest: the pickled bytes, and the inputs decoded
# once. A session takes a decoded sample out of FRESH at its first use (its own copy-on-write copy:
# only the pages the policy touches are copied, ~3 page faults per call instead of a ~15 us decode);
# any later use in the same session decodes the bytes again, so no call sees another call's mutations.
# The bytes live apart from the decoded inputs so that a session never writes to (faults in) them.
SAMPLES: dict[str, bytes] = {}
FRESH: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {}
# A session checks its CPU time (a system call) at most this often, not per call: between two checks
# it can use at most this much CPU per thread, far inside the 25% margin kept below RLIMIT_CPU.
_CPU_CHECK_S = 0.01
_HERE = os.path.abspath(__file__)


class ProgressPage:
    """(index of the running call or IDLE, time.monotonic() when it started) in shared memory.

    Each field is one aligned 8-byte store/load (struct.pack_into would zero the bytes first, and a
    reader could then see a start time of 0 and kill a healthy call). The writer stores the start
    before the index and the reader loads the index before the start, so an index is never paired
    with an older start time.
    """

    def __init__(self, buf: mmap.mmap) -> None:
        self.buf = buf
        self._view = memoryview(buf)
        self._index = self._view[0:8].cast("q")
        self._start = self._view[8:16].cast("d")

    def set(self, index: int, start: float) -> None:
        self._start[0] = start
        self._index[0] = index

    def get(self) -> tuple[int, float]:
        index = self._index[0]
        return index, self._start[0]

    def close(self) -> None:
        for view in (self._index, self._start, self._view):
            view.release()
        self.buf.close()


def read_exact(fd: int, n: int) -> bytes | None:
    """Read exactly n bytes (never more: the next frame may belong to another process); None on EOF."""
    chunks, left = [], n
    while left:
        chunk = os.read(fd, left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int) -> Any:
    head = read_exact(fd, HEADER.size)
    if head is None:
        return None
    body = read_exact(fd, HEADER.unpack(head)[0])
    return None if body is None else pickle.loads(body)  # trusted direction: parent → worker


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def resolve(spec: str) -> Callable[..., Any]:
    """``"module:function"`` → the function (trusted names from the pool's configuration)."""
    module_name, _, attr = spec.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


class Session:
    """One policy in one confined process: compile once, then serve call batches until ``end``."""

    def __init__(self, source: str, name: str, harness: Callable[..., Any] | None, config: dict[str, Any],
                 res_fd: int, progress: ProgressPage) -> None:
        from langprop.sandbox.confine import CappedWriter

        self.source, self.name, self.harness = source, name, harness
        self.res_fd, self.progress = res_fd, progress
        self.capture = CappedWriter(int(config["stdout_cap_bytes"]))
        self.max_output = int(config["max_output_bytes"])
        self._compiled: dict[str, tuple[Callable[..., Any] | None, tuple[Any, ...] | None]] = {}
        self.buffer: list[tuple[Any, ...]] = []
        self.buffer_since = 0.0  # when the oldest buffered result was started
        self.spent: list[Any] = []  # samples taken out of FRESH, kept alive: freeing them would fault in every page
        self.cpu_budget = 0.75 * int(config["cpu_s"])

    def function(self) -> tuple[Callable[..., Any] | None, tuple[Any, ...] | None]:
        """Compile and exec the source once per session (cached by source hash); errors are cached too."""
        key = hashlib.sha256(self.source.encode()).hexdigest()
        if key not in self._compiled:
            linecache.cache[_POLICY_FILE] = (len(self.source), None, self.source.splitlines(True), _POLICY_FILE)
            namespace: dict[str, Any] = {"__name__": "policy", "__builtins__": __builtins__}
            try:
                exec(compile(self.source, _POLICY_FILE, "exec"), namespace)
                fn = namespace.get(self.name)
                if not callable(fn):
                    raise NameError(f"the policy source does not define a function named {self.name!r}")
                self._compiled[key] = (fn, None)
            except BaseException as exc:  # noqa: BLE001 - policy code: every failure is data
                self._compiled[key] = (None, _error(exc, self.capture.take()))
        return self._compiled[key]

    def inputs(self, ref: bytes | str) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """A call's (args, kwargs), never shared with another call: decoded from its own bytes, or a
        sample the zygote decoded before the fork (first use in this process; later uses decode again)."""
        if type(ref) is str:
            fresh = FRESH.pop(ref, None)
            if fresh is not None:
                self.spent.append(fresh)
                return fresh
            ref = SAMPLES[ref]
        return pickle.loads(ref)

    def run(self, calls: list[tuple[int, bytes | str]]) -> None:
        """Serve one batch. Per call: one clock read, two stores to the progress page, the call, one
        result tuple; results go out once they hold ``_FLUSH_WORK_S`` of work (or ``_FLUSH_EVERY_N``)."""
        fn: Callable[..., Any] | None = None
        clock, mark, buffer = time.monotonic, self.progress.set, self.buffer
        next_cpu_check = 0.0
        for index, blob in calls:
            t0 = clock()
            if t0 >= next_cpu_check:
                if time.process_time() > self.cpu_budget:
                    # Near RLIMIT_CPU: hand the remaining calls back rather than be killed in the middle of one.
                    self.flush()
                    os._exit(RECYCLE_EXIT)
                next_cpu_check = t0 + _CPU_CHECK_S
            mark(index, t0)
            if fn is None:  # compiled at the first call, under its timeout
                fn, error = self.function()
                if fn is None:
                    result: tuple[Any, ...] = (index, *error, clock() - t0)  # type: ignore[misc]
                else:
                    result = self._call(index, fn, blob, t0)
            else:
                result = self._call(index, fn, blob, t0)
            if not buffer:
                self.buffer_since = t0
            buffer.append(result)
            if len(buffer) >= _FLUSH_EVERY_N or clock() - self.buffer_since > _FLUSH_WORK_S:
                self.flush()
                buffer = self.buffer
        mark(IDLE, clock())
        self.flush()

    def _call(self, index: int, fn: Callable[..., Any], blob: bytes | str, t0: float) -> tuple[Any, ...]:
        """(index, output, duration) for an ok call that printed nothing, else the full 8-field result."""
        try:
            args, kwargs = self.inputs(blob)
            if self.harness is not None:
                out = self.harness(fn, kwargs) if not args else self.harness(fn, *args, **kwargs)
            else:
                out = fn(*args, **kwargs)
            plain = to_plain(out)
            capture = self.capture
            if not capture.parts and not capture.truncated:
                return (index, plain, time.monotonic() - t0)
            return (index, "ok", plain, None, None, None, capture.take(), time.monotonic() - t0)
        except BaseException as exc:  # noqa: BLE001 - SystemExit/KeyboardInterrupt are policy failures too
            return (index, *_error(exc, self.capture.take()), time.monotonic() - t0)

    def flush(self) -> None:
        if not self.buffer:
            return
        payload = dumps(("results", self.buffer))
        if len(payload) > self.max_output:
            payload = dumps(("results", [self._shrink(r) for r in self.buffer]))
        write_all(self.res_fd, frame(payload))
        self.buffer = []

    def _shrink(self, result: tuple[Any, ...]) -> tuple[Any, ...]:
        if len(dumps(result)) * 2 <= self.max_output:
            return result
        message = f"the output is larger than max_output_bytes={self.max_output}"
        stdout = result[6][:1000] if len(result) == 8 else ""
        return (result[0], "exception", None, "OutputTooLarge", message, None, stdout, result[-1])


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except BaseException:  # noqa: BLE001 - a hostile __str__
        return "<unprintable exception>"


def _error(exc: BaseException, stdout: str) -> tuple[Any, ...]:
    """(status, output, type, message, traceback tail, stdout) for a failed call, frames of this file cut."""
    tb = exc.__traceback__
    while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename) == _HERE:
        tb = tb.tb_next
    try:
        text = "".join(traceback.format_exception(type(exc), exc, tb))
    except BaseException:  # noqa: BLE001
        text = f"{type(exc).__name__}: {_safe_str(exc)}\n"
    if len(text) > _TRACEBACK_CHARS:
        text = "...\n" + text[-_TRACEBACK_CHARS:]
    return ("exception", None, type(exc).__name__, _safe_str(exc)[:2000], text, stdout)


def _run_session(msg: tuple[Any, ...], harness: Callable[..., Any] | None, config: dict[str, Any],
                 ctl_fd: int, res_fd: int, progress: ProgressPage) -> None:
    """Body of the forked process. Never returns: os._exit skips atexit hooks a policy may add."""
    code = 0
    try:
        os.setpgid(0, 0)
        os.close(ctl_fd)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        from langprop.sandbox.confine import confine_child

        confine_child(int(config["memory_mb"]), int(config["cpu_s"]), int(config["max_processes"]))
        from langprop.sandbox.jail import fsize_limit

        fsize_limit(int(config["fsize_mb"]))
        session = Session(msg[1], msg[2], harness, config, res_fd, progress)
        sys.stdout = sys.stderr = session.capture  # type: ignore[assignment]
        if msg[4]:  # the first calls came with the session message (inherited through the fork)
            session.run(msg[4])
        while not msg[5]:  # not ended with those calls: more come on the command pipe
            command = read_frame(0)
            if command is None or command[0] == "end":
                break
            session.run(command[1])
    except BaseException:  # noqa: BLE001 - report through the exit status; the parent names it
        code = 70
    os._exit(code)


def _wait_session(pid: int, parent: int) -> tuple[int | None, int | None]:
    """Wait for the session to end; kill it and exit if our own parent (the trainer) went away."""
    pidfd = os.pidfd_open(pid)
    try:
        while not select.select([pidfd], [], [], 1.0)[0]:
            if os.getppid() != parent:
                _killpg(pid)
                os._exit(0)
        status = os.waitpid(pid, 0)[1]
    finally:
        os.close(pidfd)
    _killpg(pid)  # anything the session left behind in its group
    if os.WIFSIGNALED(status):
        return None, os.WTERMSIG(status)
    return os.WEXITSTATUS(status), None


def _killpg(pgid: int) -> None:
    with contextlib.suppress(OSError):
        os.killpg(pgid, signal.SIGKILL)


def main(argv: list[str]) -> None:
    ctl_fd, res_fd, shm_fd = (int(a) for a in argv[1:4])
    progress = ProgressPage(mmap.mmap(shm_fd, PROGRESS_BYTES))
    ctl = socket.socket(fileno=ctl_fd)  # SOCK_SEQPACKET: one message per send, fds can travel with it
    parent = os.getppid()
    init = read_frame(0)
    try:
        # What every session needs anyway, imported once here instead of once per fork.
        for name in ("ctypes", "subprocess", "threading", "traceback", "_posixsubprocess", "langprop.sandbox.confine"):
            importlib.import_module(name)
        sys.modules["langprop.sandbox.confine"].prepare()
        config = init[1]
        for name in config.get("preload", ()):
            importlib.import_module(name)
        harness = resolve(config["harness"]) if config.get("harness") else None
        if harness is not None:
            for name in getattr(sys.modules[harness.__module__], "SANDBOX_PRELOAD", ()):
                importlib.import_module(name)
        # Last, once everything is imported: every session forked from here inherits the jail.
        from langprop.sandbox.jail import JailConfig, enter_jail

        jail = enter_jail(JailConfig(**config["jail"]))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises SandboxError
        ctl.send(frame(dumps(("error", f"{type(exc).__name__}: {exc}"))))
        return
    gc.disable()  # the zygote makes no cycles worth collecting; sessions re-enable the collector
    ctl.send(frame(dumps(("ready", os.getpid(), jail.to_dict()))))
    while True:
        msg = read_frame(0)
        if msg is None or msg[0] == "quit":
            return
        if msg[0] == "samples":  # decoded once here, inherited copy-on-write by every session
            for sid, blob in msg[1]:
                SAMPLES[sid] = blob
                FRESH[sid] = pickle.loads(blob)
            continue
        if msg[0] == "reset":
            SAMPLES.clear()
            FRESH.clear()
            continue
        if msg[0] != "session":
            continue  # the tail of a session that was killed before reading it
        cmd_r, cmd_w = os.pipe()
        # Everything the zygote holds is frozen out of the collector: a session's garbage collections
        # then never walk (and copy-on-write) the inherited heap, which is most of the memory it touches.
        gc.freeze()
        pid = os.fork()
        if pid == 0:
            gc.enable()
            os.dup2(cmd_r, 0)  # the session only ever sees its own command pipe
            os.close(cmd_r)
            os.close(cmd_w)
            _run_session(msg, harness, config | msg[3], ctl_fd, res_fd, progress)
        os.close(cmd_r)
        with contextlib.suppress(OSError):
            os.setpgid(pid, pid)  # also done in the child: whichever runs first, the group exists
        # The parent writes the session's commands straight into its pipe: no relay hop per call.
        socket.send_fds(ctl, [frame(dumps(("started", pid)))], [cmd_w])
        os.close(cmd_w)
        code, sig = _wait_session(pid, parent)
        jail.reset_tmp()  # one policy's /tmp files (or a full /tmp) never reach the next session
        ctl.send(frame(dumps(("exited", pid, code, sig))))


if __name__ == "__main__":
    main(sys.argv)
