"""Pool and SandboxedFunction behaviour: ordering, data round trip, deadlines, harness, worker reuse."""

from __future__ import annotations

import os
import pickle
import signal
import threading

import numpy as np
import pytest

from langprop.sandbox import PolicyCallError, SandboxedFunction, SandboxError, SandboxLimits, SandboxPool
from langprop.sandbox.wire import NotPlainData, ProtocolError, loads_plain, to_plain


def test_results_come_back_in_job_and_sample_order(pool: SandboxPool) -> None:
    jobs = [(f"def g(x):\n    return ({j}, x)\n", "g", [{"x": i} for i in range(7 + j)]) for j in range(5)]
    results = pool.run(jobs)
    assert [[r.output for r in row] for row in results] == [[(j, i) for i in range(7 + j)] for j in range(5)]
    assert all(r.status == "ok" and r.duration_s >= 0 for row in results for r in row)


def test_outputs_round_trip_as_plain_data(pool: SandboxPool) -> None:
    source = """
import collections, enum
import numpy as np
P = collections.namedtuple("P", "a b")
class Level(enum.IntEnum):
    MOVE = 2
def f():
    return {"arr": np.arange(6, dtype=np.float32).reshape(2, 3), "scalar": np.int64(7), "flag": np.bool_(True),
            "tuple": P(1, "x"), "level": Level.MOVE, "bytes": b"\\x00", ("k", 1): None, "u": np.array(["ab"])}
"""
    ((r,),) = pool.run([(source, "f", [{}])])
    assert r.status == "ok", r
    out = r.output
    assert out["arr"].dtype == np.float32 and out["arr"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert out["arr"].flags.writeable
    assert type(out["scalar"]) is int and out["flag"] is True and type(out["level"]) is int
    assert out["tuple"] == (1, "x") and type(out["tuple"]) is tuple
    assert out[("k", 1)] is None and out["bytes"] == b"\x00" and out["u"].tolist() == ["ab"]


def test_stdout_is_captured_per_call(pool: SandboxPool) -> None:
    source = "def f(x):\n    if x:\n        print('hello', x)\n    return x\n"
    ((a, b),) = pool.run([(source, "f", [{"x": 1}, {"x": 0}])])
    assert a.stdout == "hello 1\n" and b.stdout == ""


def test_unpicklable_inputs_are_a_clear_error(pool: SandboxPool) -> None:
    with pytest.raises(SandboxError, match="job 0 sample 1"):
        pool.run([("def f(x):\n    return x\n", "f", [{"x": 1}, {"x": threading.Lock()}])])


def test_batch_deadline_kills_and_skips() -> None:
    limits = SandboxLimits(call_timeout_s=5.0, batch_deadline_s=0.5)
    source = "import time\ndef f(x):\n    time.sleep(0.4)\n    return x\n"
    with SandboxPool(n_workers=1, limits=limits) as pool:
        pool.start()
        (row,) = pool.run([(source, "f", [{"x": i} for i in range(4)])])
        assert [r.status for r in row][:1] == ["ok"]
        assert {r.error_type for r in row[1:]} == {"BatchDeadline"}
        assert all(r.status == "timeout" for r in row[1:])
        # The pool goes on serving.
        assert pool.run([("def f():\n    return 1\n", "f", [{}])])[0][0].output == 1


def test_harness_runs_an_environment_episode_in_the_worker() -> None:
    policy = "def solve_cartpole(x, x_dot, theta, theta_dot):\n    return 1 if theta + 0.5 * theta_dot > 0 else 0\n"
    with SandboxPool(n_workers=1, harness="langprop.examples.cartpole.harness:run_episode") as pool:
        ((r,),) = pool.run([(policy, "solve_cartpole", [{"seed": 3, "max_steps": 50}])])
    assert r.status == "ok", r
    assert r.output["episode_return"] == 50.0 and len(r.output["actions"]) == 50


def test_bad_harness_fails_at_start_with_its_name() -> None:
    with SandboxPool(n_workers=1, harness="no_such_module_x:run") as pool, pytest.raises(SandboxError, match="no_such_module_x"):
        pool.run([("def f():\n    return 1\n", "f", [{}])])
    with pytest.raises(SandboxError, match="module:function"):
        SandboxPool(harness="just_a_name")


def test_a_dead_worker_is_replaced(pool: SandboxPool) -> None:
    pool.start()
    victim = pool.workers[0]
    os.kill(victim.proc.pid, signal.SIGKILL)
    victim.proc.wait()
    results = pool.run([("def f(x):\n    return -x\n", "f", [{"x": i} for i in range(6)])])
    assert [r.output for r in results[0]] == [0, -1, -2, -3, -4, -5]


def test_close_ends_every_worker_process() -> None:
    pool = SandboxPool(n_workers=2)
    pool.start()
    pids = [w.proc.pid for w in pool.workers]
    pool.close()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with pytest.raises(SandboxError, match="closed"):
        pool.run([])


def test_sandboxed_function_compiles_once_and_restarts_after_a_kill() -> None:
    source = """
import time
calls = []
def counter(hang=False, *, step=1):
    if hang:
        while True:
            pass
    calls.append(step)
    return sum(calls)
"""
    with SandboxedFunction(source, "counter", SandboxLimits(call_timeout_s=0.3)) as fn:
        assert [fn(), fn(step=2), fn(False, step=3)] == [1, 3, 6]  # module state persists: compiled once
        r = fn.call(True)
        assert r.status == "timeout"
        with pytest.raises(PolicyCallError, match="timeout"):
            fn(True)
        assert fn() == 1  # a fresh process after the kill


def test_sandboxed_function_raises_policy_errors() -> None:
    with SandboxedFunction("def f(a, b):\n    return a / b\n", "f") as fn:
        assert fn(1, 2) == 0.5
        with pytest.raises(PolicyCallError) as info:
            fn(1, 0)
        assert info.value.result.error_type == "ZeroDivisionError"
    with pytest.raises(SandboxError, match="closed"):
        fn(1, 2)


def test_loads_plain_refuses_globals() -> None:
    evil = pickle.dumps(("results", [os.getcwd]))
    with pytest.raises(ProtocolError, match="only plain data"):
        loads_plain(evil)
    with pytest.raises(ProtocolError):
        loads_plain(b"\x80\x05garbage")
    forged = pickle.dumps((b"\x00langprop.ndarray\x00", "|O", (1,), b"\x00" * 8))
    with pytest.raises(ProtocolError, match="dtype"):
        loads_plain(forged)


def test_to_plain_rejects_objects_and_cycles() -> None:
    with pytest.raises(NotPlainData, match="object"):
        to_plain(np.array([object()]))
    loop: list = []
    loop.append(loop)
    with pytest.raises(NotPlainData, match="deeper"):
        to_plain(loop)
    with pytest.raises(NotPlainData, match="set"):
        to_plain({1, 2})


def test_a_session_near_its_cpu_limit_hands_calls_to_a_fresh_process() -> None:
    source = """
import time
count = []
def burn():
    t = time.process_time()
    while time.process_time() - t < 0.55:
        pass
    count.append(1)
    return len(count)
"""
    with SandboxedFunction(source, "burn", SandboxLimits(cpu_s=2, call_timeout_s=20)) as fn:
        assert [fn() for _ in range(4)] == [1, 2, 3, 1]  # the 4th call ran in a new process, not killed


def test_progress_page_never_pairs_an_index_with_an_older_start() -> None:
    # Regression: struct.pack_into zero-fills before writing, so a reader could see start=0.0 and
    # kill a healthy call as overdue.
    import mmap

    from langprop.sandbox.zygote import PROGRESS_BYTES, ProgressPage

    fd = os.memfd_create("progress-test")
    os.ftruncate(fd, PROGRESS_BYTES)
    page = ProgressPage(mmap.mmap(fd, PROGRESS_BYTES))
    os.close(fd)
    pid = os.fork()
    if pid == 0:
        for i in range(1, 200_000):
            page.set(i, float(i))
        os._exit(0)
    torn = 0
    while not os.waitpid(pid, os.WNOHANG)[0]:
        index, start = page.get()
        torn += index > 0 and start < index
    page.close()
    assert torn == 0


def test_a_run_interrupted_by_ctrl_c_leaves_the_pool_usable(monkeypatch: pytest.MonkeyPatch) -> None:
    from langprop.sandbox.worker import Worker

    accept = Worker._accept_results

    def interrupted(self: Worker, msg: object) -> None:
        accept(self, msg)
        raise KeyboardInterrupt

    slow = "import time\ndef f(x):\n    time.sleep(0.02)\n    return x\n"
    with SandboxPool(n_workers=1) as pool:
        monkeypatch.setattr(Worker, "_accept_results", interrupted)
        with pytest.raises(KeyboardInterrupt):
            pool.run([(slow, "f", [{"x": i} for i in range(50)])])
        monkeypatch.undo()
        (row,) = pool.run([("def f(x):\n    return -x\n", "f", [{"x": i} for i in range(5)])])
        assert [r.output for r in row] == [0, -1, -2, -3, -4]


def test_samples_stay_in_workers_across_runs_unless_too_big() -> None:
    small = [{"x": i} for i in range(6)]
    big = [{"data": bytes([i]) * 600_000} for i in range(20)]  # 12 MB > 320 MB / 32
    with SandboxPool(n_workers=1, limits=SandboxLimits(memory_mb=320)) as pool:
        (row,) = pool.run([("def f(x):\n    return x\n", "f", small)])
        kept = pool.workers[0].samples_bytes
        assert kept > 0 and [r.output for r in row] == list(range(6))
        # The same batch again (e.g. children after parents): nothing new is shipped.
        again = [dict(kw) for kw in small]  # equal content, new objects
        (row,) = pool.run([("def f(x):\n    return -x\n", "f", again)])
        assert pool.workers[0].samples_bytes == kept and [r.output for r in row] == [0, -1, -2, -3, -4, -5]
        # Too big to keep: sent with the calls instead, still correct.
        (row,) = pool.run([("def f(data):\n    return (len(data), data[0])\n", "f", big)])
        assert [r.output for r in row] == [(600_000, i) for i in range(20)]
        assert pool.workers[0].samples_bytes == kept
