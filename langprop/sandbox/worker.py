"""Trusted-side handle of one worker (a zygote process and its current policy session).

The handle is non-blocking: a driver loop (:func:`drive`) selects over the pipes of several workers,
feeds their bytes in, and asks each for its next deadline. Per-call timeouts are read from the shared
progress page (which call runs since when), so calls are sent in batches and answered in batches,
yet an overdue call is killed within milliseconds: the whole session process group gets SIGKILL,
the overdue call becomes ``timeout`` and the calls after it are handed back for re-dispatch.
"""

from __future__ import annotations

import logging
import math
import mmap
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from langprop.sandbox.types import CallResult, SandboxError, SandboxLimits
from langprop.sandbox.wire import (
    HEADER,
    ProtocolError,
    dumps,
    frame,
    from_plain,
    loads_plain,
    loads_unchecked,
)
from langprop.sandbox.zygote import IDLE, PROGRESS_BYTES, RECYCLE_EXIT, ProgressPage

log = logging.getLogger(__name__)

DEFAULT_PRELOAD = (
    "numpy", "math", "random", "collections", "itertools", "functools", "heapq", "bisect", "re",
    "json", "typing", "dataclasses", "statistics", "copy", "operator", "string", "enum",
)  # fmt: skip
_ENV_KEEP = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SYSTEMROOT")
_SECRET = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH)|^(OPENAI|ANTHROPIC|AWS|AZURE|HF)_", re.I)
_START_TIMEOUT_S = 120.0
_SESSION_SLACK_S = 2.0
_POLL_S = 0.02
_SILENCE_SLACK_S = 1.0  # fork + confine + result flush window, on top of call_timeout_s
_MAX_RESTARTS_IN_A_ROW = 5  # compile + module-level code, on top of n_calls * call_timeout


def worker_env() -> dict[str, str]:
    """Environment for worker processes: an allowlist, never anything that looks like a secret."""
    env = {k: v for k, v in os.environ.items() if k in _ENV_KEEP and not _SECRET.search(k)}
    roots = [str(Path(__file__).resolve().parents[2])] + [p for p in sys.path if p and os.path.isdir(p)]
    env.update(
        PYTHONPATH=os.pathsep.join(dict.fromkeys(roots)),
        HOME=tempfile.gettempdir(),
        PYTHONNOUSERSITE="1",
        PYTHONDONTWRITEBYTECODE="1",
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        NUMEXPR_NUM_THREADS="1",
    )
    return env


_UNJAILED_WARNED = False


def _warn_if_unjailed(report: Any, wanted: bool) -> None:
    """Say once per process when the kernel refused (part of) the jail the limits asked for."""
    global _UNJAILED_WARNED
    if not wanted or _UNJAILED_WARNED or not isinstance(report, dict):
        return
    from langprop.sandbox.jail import JailReport

    jail = JailReport.from_dict(report)
    if not jail.active:
        _UNJAILED_WARNED = True
        log.warning("sandbox: %s", jail.describe())


def _signal_reason(sig: int, limits: SandboxLimits) -> str:
    if sig == signal.SIGXCPU:
        return f"CPU limit of {limits.cpu_s}s exceeded (SIGXCPU)"
    if sig == signal.SIGKILL:
        return "killed by SIGKILL (out of memory?)"
    name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
    return f"killed by {name}"


@dataclass
class _Session:
    pending: dict[int, None] = field(default_factory=dict)  # sent, not yet answered, in order
    pid: int | None = None
    deadline: float = 0.0  # hard bound independent of what the (untrusted) progress page says
    # Results are flushed after every ~20 ms of work, so a silence longer than one call's timeout (plus
    # slack) means a call overran, whatever the page claims. Also independent of the page.
    last_activity: float = 0.0
    kill: tuple[str, str, str] | None = None  # (status, error type, message) for the running call once killed
    ended: bool = False  # "end" sent: a clean exit is expected once pending is empty
    discard: bool = False  # the result stream is corrupt; ignore it until the session ends
    cmd_fd: int | None = None  # write end of the session's own command pipe (arrives with "started")
    outbox: bytearray = field(default_factory=bytearray)  # calls/end frames waiting for cmd_fd


class Worker:
    """One zygote and at most one live session. Results land in ``completed``; after a session ends
    abnormally the calls it did not answer land in ``unfinished`` (the caller re-dispatches them)."""

    def __init__(self, limits: SandboxLimits, harness: str | None = None,
                 preload: tuple[str, ...] = DEFAULT_PRELOAD) -> None:
        self.limits, self.harness, self.preload = limits, harness, preload
        self.proc: subprocess.Popen[bytes] | None = None
        self.session: _Session | None = None
        self.completed: list[tuple[int, CallResult]] = []
        self.unfinished: list[int] = []
        self.restarts = 0
        self.failures_in_a_row = 0

    # ---- process lifecycle -------------------------------------------------------------------
    def spawn(self) -> None:
        self.ctl_sock, ctl_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ctl_r, ctl_w = self.ctl_sock.fileno(), ctl_child.detach()
        res_r, res_w = os.pipe()
        shm = os.memfd_create("langprop-progress")
        os.ftruncate(shm, PROGRESS_BYTES)
        self.progress = ProgressPage(mmap.mmap(shm, PROGRESS_BYTES))
        self.progress.set(IDLE, time.monotonic())
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        cmd = [sys.executable, "-s", "-m", "langprop.sandbox.zygote", str(ctl_w), str(res_w), str(shm)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self.stderr,
                                     pass_fds=(ctl_w, res_w, shm), env=worker_env(), start_new_session=True,
                                     cwd=tempfile.gettempdir())
        for fd in (ctl_w, res_w, shm):
            os.close(fd)
        assert self.proc.stdin is not None
        self.cmd_fd, self.ctl_fd, self.res_fd = self.proc.stdin.fileno(), ctl_r, res_r
        for fd in (self.cmd_fd, res_r):
            os.set_blocking(fd, False)
        self.ctl_sock.setblocking(False)
        self.ctl_buf, self.res_buf, self.outbox = bytearray(), bytearray(), bytearray()
        self.passed_fds: list[int] = []
        self.samples_sent: set[str] = set()
        self.samples_bytes = 0
        self.ready = False
        lim = self.limits
        jail = {"network": lim.isolate, "filesystem": lim.isolate, "require_jail": lim.require_jail,
                "tmp_mb": lim.tmp_mb}
        config = {"preload": list(self.preload), "harness": self.harness, "jail": jail}
        self.outbox += frame(dumps(("init", config)))
        self.started_at = time.monotonic()

    def fileobjs(self) -> list[tuple[int, int]]:
        events = [(self.ctl_fd, selectors.EVENT_READ), (self.res_fd, selectors.EVENT_READ)]
        if self.outbox:
            events.append((self.cmd_fd, selectors.EVENT_WRITE))
        s = self.session
        if s is not None and s.cmd_fd is not None and s.outbox:
            events.append((s.cmd_fd, selectors.EVENT_WRITE))
        return events

    def close(self) -> None:
        if self.proc is None:
            return
        if self.session is not None and self.session.pid:
            _killpg(self.session.pid)
        _killpg(self.proc.pid)
        self.proc.wait()
        if self.session is not None and self.session.cmd_fd is not None:
            os.close(self.session.cmd_fd)
        for fd in self.passed_fds:
            os.close(fd)
        self.ctl_sock.close()
        os.close(self.res_fd)
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.progress.close()
        self.stderr.close()
        self.proc = None

    def _fail_start(self, why: str) -> None:
        self.stderr.seek(0)
        tail = self.stderr.read().decode(errors="replace").strip().splitlines()[-3:]
        self.close()
        raise SandboxError(f"sandbox worker failed to start ({why}){': ' + ' | '.join(tail) if tail else ''}")

    def restart(self) -> None:
        """The zygote died or its channels are corrupt: a fresh interpreter (calls were handed back)."""
        log.warning("restarting sandbox worker (pid %s)", self.proc.pid if self.proc else None)
        self.close()
        self.session = None
        self.restarts += 1
        self.failures_in_a_row += 1
        if self.failures_in_a_row > _MAX_RESTARTS_IN_A_ROW:
            raise SandboxError(f"sandbox worker died {self.failures_in_a_row} times in a row; giving up")
        self.spawn()

    # ---- sessions ----------------------------------------------------------------------------
    @property
    def idle(self) -> bool:
        return self.ready and self.session is None

    def open_session(self, source: str, function_name: str, calls: list[tuple[int, bytes | str]] | None = None,
                     end: bool = False) -> None:
        """Start a policy session. ``calls`` travel with the session message: the policy process is
        forked holding them and starts at once (no round trip through the parent); with ``end`` it
        exits after them (``send_calls``/``end_session`` are then not used)."""
        assert self.idle, "worker busy"
        now = time.monotonic()
        self.progress.set(IDLE, now)  # never an old start time
        s = self.session = _Session(deadline=now + _SESSION_SLACK_S, last_activity=now, ended=end)
        calls = calls or []
        s.pending.update((i, None) for i, _ in calls)
        s.deadline += len(calls) * self.limits.call_timeout_s
        self.outbox += frame(dumps(("session", source, function_name, asdict(self.limits), calls, end)))

    def send_samples(self, samples: list[tuple[str, bytes]]) -> None:
        """Give the zygote sample inputs (keyed by content digest) that later calls refer to; only
        between sessions. The zygote keeps them across runs until they outgrow ``sample_store_bytes``."""
        assert self.session is None
        todo = {sid: blob for sid, blob in samples if sid not in self.samples_sent}
        size = sum(len(b) for b in todo.values())
        if size and self.samples_bytes + size > self.sample_store_bytes:
            self.samples_sent.clear()
            self.samples_bytes = 0
            self.outbox += frame(dumps(("reset",)))
            todo = dict(samples)
            size = sum(len(b) for b in todo.values())
        if todo:
            self.samples_sent.update(todo)
            self.samples_bytes += size
            self.outbox += frame(dumps(("samples", list(todo.items()))))

    @property
    def sample_store_bytes(self) -> int:
        """Pickled bytes of samples kept in the zygote: every policy process inherits them (decoded,
        several times larger) inside its RLIMIT_AS, so they get a small slice of ``memory_mb``."""
        return self.limits.memory_mb * 1024 * 1024 // 32

    def send_calls(self, calls: list[tuple[int, bytes | str]]) -> None:
        """Calls as (call id, pickled (args, kwargs)) or (call id, sample digest sent with send_samples)."""
        s = self.session
        assert s is not None and not s.ended
        now = time.monotonic()
        s.deadline = max(s.deadline, now + _SESSION_SLACK_S) + len(calls) * self.limits.call_timeout_s
        if not s.pending:
            s.last_activity = now
        s.pending.update((i, None) for i, _ in calls)
        s.outbox += frame(dumps(("calls", calls)))

    def end_session(self) -> None:
        assert self.session is not None
        self.session.ended = True
        self.session.outbox += frame(dumps(("end",)))

    def kill_session(self, status: str, message: str, error_type: str | None = None) -> None:
        """SIGKILL the session's process group; the running call gets (status, error type, message)."""
        s = self.session
        if s is None or s.kill is not None:
            return
        s.kill = (status, error_type or _ERROR_TYPE[status], message)
        if s.pid is not None:
            _killpg(s.pid)

    # ---- I/O -------------------------------------------------------------------------------
    def on_event(self, fd: int, mask: int) -> None:
        s = self.session
        if s is not None and fd == s.cmd_fd and mask & selectors.EVENT_WRITE:
            try:
                del s.outbox[: os.write(fd, s.outbox)]
            except BlockingIOError:
                pass
            except BrokenPipeError:  # the session died; the zygote reports it
                s.outbox.clear()
        elif fd == self.cmd_fd and mask & selectors.EVENT_WRITE:
            try:
                n = os.write(self.cmd_fd, self.outbox)
                del self.outbox[:n]
            except BlockingIOError:
                pass
            except BrokenPipeError:
                self._zygote_died()
        elif fd == self.res_fd:
            self._read_results()
        elif fd == self.ctl_fd:
            self._read_control()

    def _read_results(self) -> None:
        eof = _read_into(self.res_fd, self.res_buf)
        s = self.session
        if s is None or s.discard:
            self.res_buf.clear()
            return
        try:
            for payload in _frames(self.res_buf, self.limits.max_output_bytes + 4096):
                self._accept_results(loads_unchecked(payload))
        except ProtocolError as exc:
            log.warning("sandbox session sent a corrupt result stream: %s", exc)
            s.discard = True
            self.res_buf.clear()
            self.kill_session("crash", f"the worker sent a corrupt or oversized message ({exc})", "ProtocolError")
        if eof:
            self._zygote_died()

    def _accept_results(self, msg: Any) -> None:
        s = self.session
        assert s is not None
        # The envelope is checked field by field; only the policy's output needs the plain-data walk.
        if not (type(msg) is tuple and len(msg) == 2 and msg[0] == "results" and type(msg[1]) is list):
            raise ProtocolError("unexpected message on the result channel")
        pending, completed = s.pending, self.completed
        for item in msg[1]:
            # (index, output, duration) for an ok call that printed nothing, else all eight fields.
            if not (type(item) is tuple and len(item) in (3, 8) and type(item[0]) is int and item[0] in pending):
                raise ProtocolError("result for a call that is not pending")
            if len(item) == 3:
                index, output, duration = item
                status, etype, emsg, tb, stdout = "ok", None, None, None, ""
            else:
                index, status, output, etype, emsg, tb, stdout, duration = item
                if status not in ("ok", "exception") or not (
                        (etype is None or type(etype) is str) and (emsg is None or type(emsg) is str)
                        and (tb is None or type(tb) is str)):
                    raise ProtocolError("malformed call result")
                if type(stdout) is not str:
                    stdout = ""
            del pending[index]
            completed.append((index, CallResult(
                status, from_plain(output), etype, emsg, tb, stdout,
                float(duration) if type(duration) in (int, float) else 0.0,
            )))  # fmt: skip
        s.last_activity = time.monotonic()

    def _read_control(self) -> None:
        eof = False
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(self.ctl_sock, 1 << 16, 4)
            except BlockingIOError:
                break
            if not data:
                eof = True
                break
            self.ctl_buf += data
            self.passed_fds.extend(fds)
        for payload in _frames(self.ctl_buf, 1 << 20):
            msg = loads_plain(payload)  # the zygote never runs policy code; still, plain data only
            if msg[0] == "ready":
                self.ready = True
                _warn_if_unjailed(msg[2], self.limits.isolate)
            elif msg[0] == "error":
                self._fail_start(f"harness or preload import failed: {msg[1]}")
            elif msg[0] == "started" and self.session is not None:
                # Time bounds start now: the zygote may have spent a while decoding samples first.
                now = time.monotonic()
                n = len(self.session.pending)
                self.session.deadline = now + _SESSION_SLACK_S + n * self.limits.call_timeout_s
                self.session.last_activity = now
                self.session.pid = msg[1]
                if self.passed_fds:
                    self.session.cmd_fd = self.passed_fds.pop(0)
                    os.set_blocking(self.session.cmd_fd, False)
                if self.session.kill is not None:
                    _killpg(msg[1])
            elif msg[0] == "exited" and self.session is not None:
                self._session_exited(msg[2], msg[3])
        if eof:
            self._zygote_died()

    def _session_exited(self, code: int | None, sig: int | None) -> None:
        s = self.session
        assert s is not None
        if not s.discard:
            self._read_results()  # the process is dead: everything it wrote is in the pipe now
        self.res_buf.clear()
        if not s.pending and code == 0:
            self.failures_in_a_row = 0
        if s.pending:
            if s.kill is None and code == RECYCLE_EXIT and sig is None:  # between calls: no verdict
                self.unfinished.extend(s.pending)
                s.pending.clear()
            elif s.kill is not None:
                self._finish_running(*s.kill)
            elif sig is not None:
                self._finish_running("crash", "WorkerCrash", f"the policy process was {_signal_reason(sig, self.limits)}")
            else:
                self._finish_running("crash", "WorkerCrash",
                                     f"the policy process exited with status {code} before answering (os._exit?)")
        if s.cmd_fd is not None:
            os.close(s.cmd_fd)
        self.session = None

    def _finish_running(self, status: str, error_type: str, message: str) -> None:
        """The running call (per the progress page, else the first pending) gets the verdict; the rest
        are handed back."""
        s = self.session
        assert s is not None and s.pending
        index, start = self.progress.get()
        running = index if index in s.pending else next(iter(s.pending))
        elapsed = time.monotonic() - start if index == running else 0.0
        del s.pending[running]
        self.completed.append((running, CallResult(status=status, error_type=error_type,  # type: ignore[arg-type]
                                                   error_message=message, duration_s=elapsed)))
        self.unfinished.extend(s.pending)
        s.pending.clear()

    def _zygote_died(self) -> None:
        if self.proc is not None and not self.ready:
            self._fail_start("the process exited during start-up")
        s = self.session
        if s is not None and s.pending:
            if s.pid is None and s.kill is None:  # died before running anything: not the policy's fault
                self.unfinished.extend(s.pending)
                s.pending.clear()
            else:
                self._finish_running(*(s.kill or ("crash", "WorkerCrash", "the sandbox worker died")))
        self.restart()

    # ---- time ------------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        s = self.session
        if not self.ready:
            return self.started_at + _START_TIMEOUT_S
        if s is None or not s.pending or s.kill is not None or s.pid is None:
            return None
        index, start = self.progress.get()
        bound = min(s.deadline, s.last_activity + self.limits.call_timeout_s + _SILENCE_SLACK_S)
        if index in s.pending:
            return min(bound, start + self.limits.call_timeout_s)
        # No call has started yet (or the page is stale): look again soon, a call may start any moment.
        return min(bound, time.monotonic() + min(_POLL_S, self.limits.call_timeout_s / 4))

    def check(self, now: float) -> None:
        """Kill the session if its running call (or the session's hard bound) is overdue."""
        if not self.ready:
            if now > self.started_at + _START_TIMEOUT_S:
                self._fail_start(f"not ready after {_START_TIMEOUT_S:.0f}s")
            return
        deadline = self.next_deadline()
        # Read the progress page twice: a read torn by a concurrent write must not kill a healthy call.
        if deadline is not None and now >= deadline and now >= (self.next_deadline() or math.inf):
            self.kill_session("timeout", f"the call exceeded the {self.limits.call_timeout_s:g}s timeout and was killed")


_ERROR_TYPE = {"timeout": "Timeout", "crash": "WorkerCrash", "exception": "Exception"}


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    except PermissionError:  # pragma: no cover - group not formed yet
        os.kill(pgid, signal.SIGKILL)


def _read_into(fd: int, buf: bytearray) -> bool:
    """Append everything readable now; True on EOF."""
    while True:
        try:
            chunk = os.read(fd, 1 << 20)
        except BlockingIOError:
            return False
        if not chunk:
            return True
        buf += chunk


def _frames(buf: bytearray, max_len: int) -> list[bytes]:
    out = []
    while len(buf) >= HEADER.size:
        (n,) = HEADER.unpack_from(buf, 0)
        if n > max_len:
            raise ProtocolError(f"message of {n} bytes exceeds the {max_len}-byte cap")
        if len(buf) < HEADER.size + n:
            break
        out.append(bytes(buf[HEADER.size : HEADER.size + n]))
        del buf[: HEADER.size + n]
    return out


def settle(*workers: Worker) -> None:
    """Forget a batch that was abandoned (e.g. by KeyboardInterrupt): kill sessions that still owe
    results, wait for them to end, and drop their leftovers."""
    stale = [w for w in workers if w.session is not None and w.session.pending]
    for w in stale:
        w.kill_session("crash", "the call was abandoned by the caller", "Abandoned")
    if stale:
        drive(stale, until=lambda: all(w.session is None for w in stale), deadline=time.monotonic() + 10.0)
    for w in workers:
        w.completed.clear()
        w.unfinished.clear()


def drive(workers: list[Worker], until: Any, deadline: float | None = None) -> bool:
    """Run the I/O loop over ``workers`` until ``until()`` is true (True) or ``deadline`` passes (False)."""
    sel = selectors.PollSelector()  # fds change every round; poll() needs no per-fd syscalls to (un)register
    try:
        while not until():
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return False
            wake = [d for w in workers if (d := w.next_deadline()) is not None]
            if deadline is not None:
                wake.append(deadline)
            timeout = max(0.0, min(wake) - now) + 0.0005 if wake else 0.5
            registered: dict[int, Worker] = {}
            for w in workers:
                for fd, events in w.fileobjs():
                    sel.register(fd, events)
                    registered[fd] = w
            try:
                for key, mask in sel.select(min(timeout, 0.5)):
                    w = registered[key.fd]
                    if w.proc is not None:
                        w.on_event(key.fd, mask)
            finally:
                for fd in registered:
                    sel.unregister(fd)
            now = time.monotonic()
            for w in workers:
                w.check(now)
        return True
    finally:
        sel.close()
