"""Hostile policies are contained: each ends as a scored failure with its reason, and the pool goes on
serving the next job (every test runs a well-behaved job after the hostile one, in the same batch)."""

from __future__ import annotations

import math
import os
import pickle
import textwrap
import time
from pathlib import Path

import pytest

from langprop.sandbox import CallResult, SandboxedFunction, SandboxLimits, SandboxPool

GOOD = "def f(x):\n    return x * 2\n"


def run_hostile(pool: SandboxPool, body: str, inputs: list[dict] | None = None) -> list[CallResult]:
    """Run ``body`` (the source of ``f``) on ``inputs`` and a good job after it; check the good job."""
    source = textwrap.dedent(body)
    inputs = inputs if inputs is not None else [{"x": 1}]
    hostile, good = pool.run([(source, "f", inputs), (GOOD, "f", [{"x": 3}, {"x": 4}])])
    assert [r.status for r in good] == ["ok", "ok"], good
    assert [r.output for r in good] == [6, 8]
    return hostile


def test_infinite_loop_times_out(pool: SandboxPool) -> None:
    (r,) = run_hostile(pool, "def f(x):\n    while True:\n        pass\n")
    assert r.status == "timeout" and "timeout" in r.error_message


def test_catch_all_loop_blocked_in_c_still_dies(pool: SandboxPool) -> None:
    (r,) = run_hostile(pool, """
        import time
        def f(x):
            while True:
                try:
                    time.sleep(100)
                except BaseException:
                    pass
        """)
    assert r.status == "timeout"


def test_fractional_timeout_is_enforced_and_later_calls_of_the_batch_still_run() -> None:
    source = "import time\ndef f(x):\n    if x == 1:\n        while True: pass\n    return x\n"
    with SandboxPool(n_workers=1, limits=SandboxLimits(call_timeout_s=0.2)) as pool:
        (results,) = pool.run([(source, "f", [{"x": 0}, {"x": 1}, {"x": 2}, {"x": 3}])])
        assert [r.status for r in results] == ["ok", "timeout", "ok", "ok"]
        assert [r.output for r in results] == [0, None, 2, 3]
        assert "0.2s" in results[1].error_message
        assert pool.stats["timeouts"] == 1


@pytest.mark.parametrize("bomb", [
    "x = bytearray(8 * 1024 ** 3)",
    "x = [0] * (2 * 1024 ** 3)",
    "import numpy as np\n    x = np.ones((10 ** 5, 10 ** 5))",
])  # fmt: skip
def test_memory_bomb(pool: SandboxPool, bomb: str) -> None:
    (r,) = run_hostile(pool, f"def f(x):\n    {bomb}\n    return len(x)\n")
    assert r.status == "exception" and r.error_type == "MemoryError"


def test_growing_memory_bomb_is_stopped(pool: SandboxPool) -> None:
    (r,) = run_hostile(pool, "def f(x):\n    x = []\n    while True:\n        x.append(bytearray(10 ** 7))\n")
    assert r.status in ("exception", "crash", "timeout")  # MemoryError, or killed first on a slow machine


def test_fork_bomb_is_refused(pool: SandboxPool) -> None:
    (r,) = run_hostile(pool, """
        import os
        def f(x):
            while True:
                os.fork()
        """)
    assert r.status == "exception" and r.error_type == "PermissionError" and "fork" in r.error_message


def test_fork_and_root_through_libc_are_refused_by_the_kernel(pool: SandboxPool) -> None:
    # ctypes bypasses every Python-level patch: the kernel limits must hold on their own.
    results = run_hostile(pool, """
        import ctypes
        def f(x):
            libc = ctypes.CDLL(None)
            regained = libc.setresuid(0, 0, 0)
            pid = libc.fork()
            if pid == 0:
                libc._exit(0)
            return pid, regained, libc.kill(x, 0)
        """, [{"x": os.getpid()}])
    assert results[0].status == "ok", results[0]
    pid, regained, signalled = results[0].output
    assert pid == -1
    if os.geteuid() == 0:  # as root, ids are dropped: no way back, no signals to the trainer
        assert regained == -1 and signalled == -1


@pytest.mark.parametrize("code", ["subprocess.run(['true'])", "os.system('true')",
                                  "threading.Thread(target=print).start()"])
def test_process_and_thread_entry_points_are_refused(pool: SandboxPool, code: str) -> None:
    (r,) = run_hostile(pool, f"import os, subprocess, threading\ndef f(x):\n    {code}\n")
    assert r.status == "exception" and r.error_type in ("PermissionError", "ImportError", "ModuleNotFoundError")


def test_sys_exit_is_an_exception(pool: SandboxPool) -> None:
    (r,) = run_hostile(pool, "import sys\ndef f(x):\n    sys.exit(3)\n")
    assert r.status == "exception" and r.error_type == "SystemExit"


def test_os_exit_is_a_crash_and_the_rest_of_the_batch_runs(pool: SandboxPool) -> None:
    results = run_hostile(pool, "import os\ndef f(x):\n    if x == 2:\n        os._exit(0)\n    return x\n",
                          [{"x": 1}, {"x": 2}, {"x": 3}])
    assert [r.status for r in results] == ["ok", "crash", "ok"]
    assert "exited" in results[1].error_message


@pytest.mark.parametrize("exc", ["KeyboardInterrupt", "BaseException", "GeneratorExit"])
def test_base_exceptions_are_exceptions(pool: SandboxPool, exc: str) -> None:
    (r,) = run_hostile(pool, f"def f(x):\n    raise {exc}('boom')\n")
    assert r.status == "exception" and r.error_type == exc and r.error_message == "boom"
    assert "raise" in r.traceback and "<policy>" in r.traceback


def test_environment_holds_no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-should-never-leak")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-nor-this")
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok")
    source = textwrap.dedent("""
        import os
        def f(trainer_pid):
            leaked = []
            for pid in (trainer_pid, os.getppid()):
                try:
                    leaked.append(open(f"/proc/{pid}/environ", "rb").read().decode(errors="replace"))
                except OSError as exc:
                    leaked.append(type(exc).__name__)
            return dict(os.environ), leaked
        """)
    with SandboxedFunction(source, "f") as fn:
        env, leaked = fn(os.getpid())
    assert not [k for k in env if "API_KEY" in k or k.startswith("OPENAI") or "TOKEN" in k]
    assert "sk-" not in repr(env) and all("sk-" not in text for text in leaked)
    # The trainer's /proc/<pid>/environ is not readable: no /proc inside the jail, and the trainer
    # is non-dumpable where the jail is off.
    assert leaked[0] in ("FileNotFoundError", "PermissionError")


def test_gigantic_print_is_capped(pool: SandboxPool) -> None:
    (r,) = run_hostile(pool, "def f(x):\n    print('y' * 10 ** 7)\n    for i in range(10 ** 5):\n        print(i)\n"
                             "    import sys\n    sys.stderr.write('err')\n    return 'done'\n")
    assert r.status == "ok" and r.output == "done"
    assert r.stdout.endswith("[truncated]") and len(r.stdout) < 2100


def test_deep_recursion(pool: SandboxPool) -> None:
    (r,) = run_hostile(pool, "def f(x):\n    return f(x + 1)\n")
    assert r.status == "exception" and r.error_type == "RecursionError"
    assert len(r.traceback) <= 3100  # tail only


def test_recursion_limit_raised_to_overflow_the_c_stack(pool: SandboxPool) -> None:
    (r,) = run_hostile(pool, "import sys\ndef g(n):\n    return g(n + 1) + 1\ndef f(x):\n"
                             "    sys.setrecursionlimit(10 ** 7)\n    return g(0)\n")
    assert r.status in ("crash", "exception", "timeout")  # segfault, MemoryError or killed: never ok


def test_nan_and_wrong_types_are_returned_as_data(pool: SandboxPool) -> None:
    nan, text, tup = run_hostile(pool, "def f(x):\n    return x\n",
                                 [{"x": float("nan")}, {"x": "MOVE"}, {"x": ("STOP", None)}])
    assert nan.status == "ok" and math.isnan(nan.output)
    assert text.output == "MOVE" and tup.output == ("STOP", None)


def test_mutating_the_input_affects_nothing_else(pool: SandboxPool) -> None:
    shared = {"xs": [1, 2, 3]}
    source = "def f(xs):\n    xs.append(99)\n    xs[0] = -1\n    return list(xs)\n"
    (results,) = pool.run([(source, "f", [shared, shared, shared])])
    assert [r.output for r in results] == [[-1, 2, 3, 99]] * 3
    assert shared == {"xs": [1, 2, 3]}


def test_missing_module(pool: SandboxPool) -> None:
    (r,) = run_hostile(pool, "import no_such_module_anywhere\ndef f(x):\n    return x\n")
    assert r.status == "exception" and r.error_type == "ModuleNotFoundError"
    assert "no_such_module_anywhere" in r.error_message


def test_syntax_error_fails_every_call(pool: SandboxPool) -> None:
    results = run_hostile(pool, "def f(x)\n    return x\n", [{"x": 1}, {"x": 2}])
    assert [r.error_type for r in results] == ["SyntaxError", "SyntaxError"]
    assert all(r.status == "exception" for r in results)


def test_missing_function_name(pool: SandboxPool) -> None:
    (r,) = run_hostile(pool, "def g(x):\n    return x\n")
    assert r.status == "exception" and "'f'" in r.error_message


def test_hostile_reduce_never_runs_in_the_trainer(pool: SandboxPool, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    (r,) = run_hostile(pool, f"""
        import os
        class Evil:
            def __reduce__(self):
                return (os.system, ("touch {marker}",))
        def f(x):
            return [1, {{"a": Evil()}}]
        """)
    assert r.status == "exception" and r.error_type == "NotPlainData" and "Evil" in r.error_message
    assert not marker.exists()


def test_forged_result_stream_is_a_crash(pool: SandboxPool, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    # The policy finds the result pipe (its fd is in the worker's argv) and writes a pickle that would
    # run os.system if the trainer unpickled it naively.
    (r,) = run_hostile(pool, f"""
        import os, pickle, struct, sys
        class Evil:
            def __reduce__(self):
                return (eval, ("__import__('pathlib').Path('{marker}').touch()",))
        def f(x):
            payload = pickle.dumps(("results", [(0, "ok", Evil(), None, None, None, "", 0.0)]))
            os.write(int(sys.argv[2]), struct.pack("<I", len(payload)) + payload)
            while True:
                pass
        """)
    assert r.status == "crash" and "corrupt" in r.error_message
    assert not marker.exists()


@pytest.mark.parametrize("item", ["()", "(10**9, 'MOVE', 0.0)", "(10**9,)", "('0', 'MOVE', 0.0)"])
def test_forged_compact_results_are_a_crash(pool: SandboxPool, item: str) -> None:
    # Ok results travel as (call id, output, duration); forged or malformed ones end the session.
    (r,) = run_hostile(pool, f"""
        import os, pickle, struct, sys
        def f(x):
            payload = pickle.dumps(("results", [{item}]))
            os.write(int(sys.argv[2]), struct.pack("<I", len(payload)) + payload)
            while True:
                pass
        """)
    assert r.status == "crash" and "corrupt" in r.error_message


def test_cpu_rlimit_kills_a_spinning_process() -> None:
    limits = SandboxLimits(call_timeout_s=30.0, cpu_s=1)
    with SandboxedFunction("def f():\n    while True:\n        pass\n", "f", limits=limits) as fn:
        r = fn.call()
    assert r.status == "crash" and "CPU" in r.error_message


def test_signalling_other_processes_is_refused(pool: SandboxPool) -> None:
    (r,) = run_hostile(pool, "import os, signal\ndef f(x):\n    os.kill(os.getppid(), signal.SIGKILL)\n")
    assert r.status == "exception" and r.error_type == "PermissionError"


def test_allowed_children_die_with_their_session() -> None:
    source = textwrap.dedent("""
        import os, time
        def f():
            pid = os.fork()
            if pid == 0:
                time.sleep(1000)
                os._exit(0)
            return pid
        """)
    with SandboxPool(n_workers=1, limits=SandboxLimits(max_processes=64)) as pool:
        ((r,),) = pool.run([(source, "f", [{}])])
        assert r.status == "ok" and r.output > 0
        # The session ended, so its process group was killed: the child is gone (or a reaped-late zombie).
        status = Path(f"/proc/{r.output}/status")

        def gone() -> bool:
            try:
                return "\nState:\tZ" in status.read_text()
            except FileNotFoundError:
                return True

        for _ in range(200):  # SIGKILL was sent before run() returned; delivery is asynchronous
            if gone():
                break
            time.sleep(0.01)
        assert gone()


def test_gigantic_output_is_refused_not_shipped() -> None:
    limits = SandboxLimits(max_output_bytes=1 << 20)
    with SandboxedFunction("def f(n):\n    return b'x' * n\n", "f", limits=limits) as fn:
        assert fn(10) == b"x" * 10
        r = fn.call(8 << 20)
        assert r.status == "exception" and r.error_type == "OutputTooLarge"
        assert fn(3) == b"xxx"  # same process, still serving


def test_forging_the_progress_page_only_delays_the_kill() -> None:
    # The policy finds the shared progress page and keeps claiming its call has just started: the
    # parent's own clock (no results for longer than one call's timeout + slack) still kills it.
    source = textwrap.dedent("""
        import sys, time
        def f():
            frame = sys._getframe(1)
            while "self" not in frame.f_locals:  # up to the worker's call loop
                frame = frame.f_back
            page = frame.f_locals["self"].progress
            while True:
                page.set(page.get()[0], time.monotonic())
        """)
    with SandboxedFunction(source, "f", SandboxLimits(call_timeout_s=0.2)) as fn:
        r = fn.call()
        assert r.status == "timeout" and "timeout" in r.error_message


def test_forged_shared_reference_bomb_is_a_crash_not_a_hang(pool: SandboxPool) -> None:
    # A 2.4 KB pickle whose shared sub-lists expand to 300**4 elements: walking it naively froze the
    # trainer past every timeout. The plain-data walk has a container budget.
    (r,) = run_hostile(pool, """
        import os, pickle, struct, sys
        def f(x):
            l = [0] * 300
            for _ in range(3):
                l = [l] * 300
            payload = pickle.dumps(("results", [(0, "ok", l, None, None, None, "", 0.0)]))
            os.write(int(sys.argv[2]), struct.pack("<I", len(payload)) + payload)
            while True:
                pass
        """)
    assert r.status == "crash" and "corrupt" in r.error_message


def test_large_genuine_outputs_are_within_the_container_budget() -> None:
    from langprop.sandbox.wire import loads_plain

    genuine = [[(i, j) for j in range(300)] for i in range(300)]  # 90,300 containers, no sharing
    assert loads_plain(pickle.dumps(genuine)) == genuine


def test_policies_are_jailed_from_files_and_network(pool: SandboxPool, tmp_path: Path) -> None:
    """The trainer's files, the project tree and the network are out of a policy's reach."""
    import socket

    victim = tmp_path / "checkpoint.json"
    victim.write_text("precious")
    project_file = Path(__file__).resolve().parents[3] / "pyproject.toml"
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    try:
        (r,) = run_hostile(pool, f"""
            import os, shutil, socket
            def f(x):
                out = {{}}
                attempts = {{
                    "read_victim": lambda: open({str(victim)!r}).read(),
                    "delete_victim_dir": lambda: shutil.rmtree({str(tmp_path)!r}),
                    "read_shadow": lambda: open("/etc/shadow").read(),
                    "write_project": lambda: open({str(project_file)!r}, "a").write("pwned"),
                    "connect": lambda: socket.create_connection(("127.0.0.1", {port}), timeout=0.5),
                    "fill_tmp": lambda: open("/tmp/big", "wb").write(b"x" * (200 << 20)),
                }}
                for name, attempt in attempts.items():
                    try:
                        attempt()
                        out[name] = "succeeded"
                    except Exception as exc:
                        out[name] = type(exc).__name__
                return out
            """)
    finally:
        listener.close()
    assert r.status == "ok", r.describe()
    # Writing "into the project" may only succeed where the checkout lies under /tmp: the path then
    # lands in the jail's private /tmp, and the real file below stays untouched.
    allowed = {"write_project"} if str(project_file).startswith("/tmp/") else set()
    assert {k for k, v in r.output.items() if v == "succeeded"} <= allowed, r.output
    assert victim.read_text() == "precious" and "pwned" not in project_file.read_text()
