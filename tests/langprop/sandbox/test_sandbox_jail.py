"""The policy jail (``langprop.sandbox.jail``): a process that entered it sees no network, no project
checkout, no secrets, a read-only Python installation, and a small writable /tmp; lazy imports and
file descriptors held from before keep working.

Each check runs in a fresh interpreter (``python -c PROBE``) started like a sandbox worker (same
environment, cwd in the temp dir): it enters the jail, tries hostile things and prints one JSON line.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from langprop.sandbox.jail import JailConfig, JailReport, fsize_limit, plan_jail
from langprop.sandbox.worker import worker_env

REPO = Path(__file__).resolve().parents[3]
SITE = sysconfig.get_paths()["purelib"]

PROBE = textwrap.dedent(r'''
    import errno, json, mmap, os, sys, tempfile
    spec = json.loads(sys.argv[1])
    out = {}

    def attempt(name, fn):
        try:
            out[name] = {"ok": True, "value": fn()}
        except OSError as exc:
            out[name] = {"ok": False, "errno": errno.errorcode.get(exc.errno, str(exc.errno)), "error": str(exc)}
        except Exception as exc:
            out[name] = {"ok": False, "errno": None, "error": f"{type(exc).__name__}: {exc}"}

    def read(path):
        with open(path, "rb") as f:
            return len(f.read(64))

    def write(path, n=5):
        with open(path, "wb") as f:
            f.write(b"x" * n)
        return n

    # held from before the jail: a pipe, a memfd page (the progress page), a file under /dev/shm
    pipe_r, pipe_w = os.pipe()
    memfd = os.memfd_create("probe")
    os.ftruncate(memfd, 16)
    page = mmap.mmap(memfd, 16)
    shm = tempfile.TemporaryFile(dir="/dev/shm") if os.path.isdir("/dev/shm") else None

    from langprop.sandbox.jail import JailConfig, enter_jail
    report = enter_jail(JailConfig(**spec["config"]))
    out["report"] = report.to_dict()
    out["root"] = sorted(os.listdir("/"))
    out["cwd"] = os.getcwd()
    for name, path in spec["reads"].items():
        attempt("read_" + name, lambda p=path: read(p))
    for name, path in spec["writes"].items() if report.filesystem_isolated else ():  # never outside a jail
        attempt("write_" + name, lambda p=path: write(p))
    if report.filesystem_isolated:  # never fill the host's /tmp
        small, big = "/tmp/" + spec["token"] + "-small", "/tmp/" + spec["token"] + "-big"
        attempt("tmp_small", lambda: write(small, 1000))
        attempt("tmp_over_cap", lambda: write(big, (spec["config"].get("tmp_mb", 64) + 1) * 1024 * 1024))
        attempt("reset_tmp", lambda: (report.reset_tmp(), sorted(os.listdir("/tmp")))[1])
    attempt("devnull", lambda: os.write(os.open("/dev/null", os.O_WRONLY), b"x"))
    attempt("urandom", lambda: len(os.urandom(8)) + read("/dev/urandom"))
    attempt("connect", lambda: __import__("socket").create_connection(("127.0.0.1", spec["port"]), timeout=1).close())

    def lazy_imports():
        import json, decimal, fractions, statistics  # noqa: F401,E401
        import numpy
        return float(numpy.linalg.inv(numpy.array([[2.0, 0.0], [0.0, 4.0]])).sum()) + float(fractions.Fraction(1, 4))

    attempt("imports", lazy_imports)

    def cartpole():
        import gymnasium
        env = gymnasium.make("CartPole-v1")
        env.reset(seed=0)
        return env.step(0)[1]

    if spec.get("gymnasium"):
        attempt("gymnasium", cartpole)

    def old_fds():
        os.write(pipe_w, b"ping")
        page[0:4] = b"page"
        got = os.read(pipe_r, 4) + bytes(page[0:4])
        if shm is not None:
            shm.write(b"shm")
            shm.seek(0)
            got += shm.read()
        return got.decode()

    attempt("old_fds", old_fds)

    def policy_process():
        """What a policy process does: fork from the jailed zygote, confine, then act hostile."""
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            res = {}
            try:
                from langprop.sandbox.confine import confine_child
                from langprop.sandbox.jail import fsize_limit
                confine_child(1024, 10, 0)
                fsize_limit(1)
                for name, path in spec["reads"].items():
                    try:
                        read(path); res["read_" + name] = "ok"
                    except OSError as exc:
                        res["read_" + name] = errno.errorcode[exc.errno]
                tmp = {"tmp": "/tmp/" + spec["token"] + "-child", "tmp_2mb": "/tmp/" + spec["token"] + "-child2"}
                for name, path in {**spec["writes"], **tmp}.items():
                    try:
                        write(path, 2 * 1024 * 1024 if name == "tmp_2mb" else 5); res["write_" + name] = "ok"
                    except OSError as exc:
                        res["write_" + name] = errno.errorcode[exc.errno]
                import csv, numpy  # noqa: F401,E401 - csv: first imported here, from the read-only binds
                res["numpy"] = float(numpy.linalg.det(numpy.eye(3) * 2))
                res["uid"] = os.getuid()
            except BaseException as exc:
                res["error"] = f"{type(exc).__name__}: {exc}"
            os.write(w, json.dumps(res).encode())
            os._exit(0)
        os.close(w)
        data = b""
        while chunk := os.read(r, 65536):
            data += chunk
        os.waitpid(pid, 0)
        return json.loads(data)

    if spec.get("policy_process") and report.filesystem_isolated:
        attempt("policy_process", policy_process)
    print("PROBE" + json.dumps(out))
''')


def run_probe(config: dict[str, Any] | None = None, port: int = 9, reads: dict[str, str] | None = None,
              writes: dict[str, str] | None = None, prefix: list[str] | None = None, **flags: Any
              ) -> tuple[dict[str, Any], str]:
    spec = {"config": config or {}, "port": port, "token": f"jailprobe-{uuid.uuid4().hex}", "reads": reads or {}, "writes": writes or {}, **flags}
    env = worker_env()  # exactly what a sandbox worker gets (OPENBLAS_NUM_THREADS=1, PYTHONPATH...)
    proc = subprocess.run([*(prefix or []), sys.executable, "-c", PROBE, json.dumps(spec)], env=env,
                          cwd=tempfile.gettempdir(), capture_output=True, text=True, timeout=60)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("PROBE")]
    assert proc.returncode == 0 and lines, f"probe failed (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return json.loads(lines[-1][5:]), proc.stderr


@pytest.fixture(scope="module")
def listener() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


READS = {"shadow": "/etc/shadow", "project": str(REPO / "pyproject.toml"), "git": str(REPO / ".git" / "HEAD"),
         "home": os.path.expanduser("~/.bashrc"), "proc_environ": "/proc/1/environ"}
WRITES = {"package": str(REPO / "langprop" / "evil.py"), "site_packages": os.path.join(SITE, "evil.pth"),
          "root": "/evil", "checkout": str(REPO / "evil.txt")}


@pytest.fixture(scope="module")
def jailed(listener: int) -> dict[str, Any]:
    """One jailed probe that does everything (as a worker would), shared by the tests below."""
    try:
        import gymnasium  # noqa: F401
        has_gym = True
    except ImportError:
        has_gym = False
    out, _ = run_probe({"tmp_mb": 4}, port=listener, reads=READS, writes=WRITES, gymnasium=has_gym,
                       policy_process=True)
    if not JailReport.from_dict(out["report"]).active:
        pytest.skip(f"namespaces are not available here: {out['report']['off']}")
    return out


def test_report_names_what_is_isolated(jailed: dict[str, Any]) -> None:
    report = JailReport.from_dict(jailed["report"])
    assert report.active and report.off == ()
    assert report.network_isolated and report.filesystem_isolated and report.tmp_mb == 4
    assert report.user_namespace == (os.geteuid() != 0)
    visible = set(report.visible)
    assert os.path.realpath(sys.base_prefix) in visible
    assert str(REPO / "langprop") in visible and str(REPO) not in visible  # packages, not the checkout
    assert "/dev/null" in visible
    assert "policy jail on" in report.describe()
    assert report.seconds < 1.0


def test_secrets_checkout_and_proc_are_not_there(jailed: dict[str, Any]) -> None:
    for name in READS:
        assert jailed["read_" + name] == {"ok": False, "errno": "ENOENT",
                                          "error": jailed["read_" + name]["error"]}, name
    assert jailed["cwd"] == "/"
    assert "proc" not in jailed["root"] and "home" not in jailed["root"]
    assert {"usr", "tmp", "dev"} <= set(jailed["root"])


def test_code_and_installation_are_read_only(jailed: dict[str, Any]) -> None:
    assert jailed["write_package"]["errno"] == "EROFS"  # the package exists, read-only
    assert jailed["write_site_packages"]["errno"] == "EROFS"
    assert jailed["write_root"]["errno"] == "EROFS"
    if not str(REPO).startswith(tempfile.gettempdir() + "/"):  # (under /tmp its mount point is in the jail's /tmp)
        assert jailed["write_checkout"]["errno"] in ("ENOENT", "EROFS")  # the checkout root is not shown
    assert not (REPO / "langprop" / "evil.py").exists() and not Path(SITE, "evil.pth").exists()


def test_tmp_is_writable_but_capped(jailed: dict[str, Any]) -> None:
    assert jailed["tmp_small"] == {"ok": True, "value": 1000}
    assert jailed["tmp_over_cap"]["errno"] == "ENOSPC"
    assert not list(Path(tempfile.gettempdir()).glob("jailprobe-*"))  # not the host's /tmp
    assert jailed["reset_tmp"]["ok"]  # emptied between sessions: room again (mount points stay)
    assert not [name for name in jailed["reset_tmp"]["value"] if name.startswith("jailprobe-")]


def test_devices_work(jailed: dict[str, Any]) -> None:
    assert jailed["devnull"]["ok"] and jailed["urandom"] == {"ok": True, "value": 8 + 64}


def test_no_network_not_even_loopback(jailed: dict[str, Any], listener: int) -> None:
    assert jailed["connect"]["ok"] is False
    assert jailed["connect"]["errno"] == "ENETUNREACH"


def test_lazy_imports_and_numpy_work_inside(jailed: dict[str, Any]) -> None:
    assert jailed["imports"] == {"ok": True, "value": pytest.approx(0.75 + 0.25)}
    if "gymnasium" in jailed:
        assert jailed["gymnasium"] == {"ok": True, "value": 1.0}


def test_descriptors_held_before_the_jail_keep_working(jailed: dict[str, Any]) -> None:
    expected = "pingpage" + ("shm" if os.path.isdir("/dev/shm") else "")
    assert jailed["old_fds"] == {"ok": True, "value": expected}


def test_forked_confined_policy_process_is_jailed_too(jailed: dict[str, Any]) -> None:
    child = jailed["policy_process"]["value"]
    assert "error" not in child, child
    assert all(child["read_" + name] == "ENOENT" for name in READS), child
    assert child["write_package"] == "EROFS" and child["write_site_packages"] == "EROFS"
    assert child["write_tmp"] == "ok"
    assert child["write_tmp_2mb"] == "EFBIG"  # fsize_limit(1): RLIMIT_FSIZE, SIGXFSZ ignored by Python
    assert child["numpy"] == pytest.approx(8.0)
    if os.geteuid() == 0:
        assert child["uid"] == 65534  # confine_child's drop to nobody still works inside the jail


def test_user_namespace_path_as_root(listener: int) -> None:
    """The unprivileged code path (user namespace, uid map, setgroups deny, capabilities dropped)."""
    if os.geteuid() != 0:
        pytest.skip("covered by the main probe: this process is not root")
    out, _ = run_probe({"user_namespace": "always"}, port=listener, reads={"shadow": "/etc/shadow"},
                       writes={"package": WRITES["package"]})
    if not JailReport.from_dict(out["report"]).active:
        pytest.skip(f"user namespaces are not available here: {out['report']['off']}")
    assert out["report"]["user_namespace"] is True
    assert out["read_shadow"]["errno"] == "ENOENT" and out["write_package"]["errno"] == "EROFS"
    assert out["connect"]["errno"] == "ENETUNREACH" and out["imports"]["ok"]


def test_unprivileged_user_gets_the_same_jail(listener: int, tmp_path: Path) -> None:
    """A real non-root user (uid 65534, no capabilities). Python lives under a 0700 /root here, so the
    probe runs in a private mount namespace where only the interpreter's directory is shown under /root."""
    if os.geteuid() != 0:
        out, _ = run_probe({}, port=listener, reads={"shadow": "/etc/shadow"}, writes={"package": WRITES["package"]})
    else:
        if not (shutil.which("unshare") and shutil.which("setpriv")):
            pytest.skip("needs unshare and setpriv to run as an unprivileged user")
        prefix = os.path.realpath(sys.base_prefix)
        if os.path.realpath(sys.prefix) != prefix:
            pytest.skip("a virtual environment: the staging script shows only one prefix")
        script = tmp_path / "as_nobody.sh"
        script.write_text(textwrap.dedent(f"""\
            set -e
            stage=$(mktemp -d)
            mount --bind {prefix} "$stage"
            if [ ! -x /root ] || [ "$(stat -c %a /root)" = 700 ]; then
                mount -t tmpfs -o mode=755,size=1m tmpfs /root
            fi
            mkdir -p {prefix}
            mount --move "$stage" {prefix}
            rmdir "$stage" 2>/dev/null || true
            exec setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all "$@"
            """))
        script.chmod(0o755)
        try:
            out, _ = run_probe({}, port=listener, reads={"shadow": "/etc/shadow"},
                               writes={"package": WRITES["package"]},
                               prefix=["unshare", "-m", "--propagation", "private", "sh", str(script)])
        except AssertionError as exc:
            pytest.skip(f"could not start an unprivileged interpreter here: {str(exc)[:300]}")
    report = JailReport.from_dict(out["report"])
    if not report.active:
        pytest.skip(f"unprivileged user namespaces are not available here: {report.off}")
    assert report.user_namespace and report.network_isolated and report.filesystem_isolated
    assert out["read_shadow"]["errno"] == "ENOENT" and out["write_package"]["errno"] == "EROFS"
    assert out["connect"]["errno"] == "ENETUNREACH"
    assert out["imports"]["ok"] and out["tmp_small"]["ok"] and out["tmp_over_cap"]["errno"] == "ENOSPC"


def _without_namespaces() -> tuple[dict[str, Any], list[str]]:
    """Probe settings under which unshare is refused (EPERM): no capabilities and no user namespace."""
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("needs setpriv to drop root's capabilities")
        return {"user_namespace": "never"}, ["setpriv", "--inh-caps=-all", "--bounding-set=-all"]
    return {"user_namespace": "never"}, []


def test_without_namespaces_the_report_says_what_is_off_and_warns_once(listener: int) -> None:
    config, prefix = _without_namespaces()
    out, stderr = run_probe(config, port=listener, prefix=prefix)
    report = JailReport.from_dict(out["report"])
    assert not report.active and not report.network_isolated and not report.filesystem_isolated
    assert "network isolation off" in report.off and "filesystem isolation off" in report.off
    assert any("EPERM" in why for why in report.off)
    assert stderr.count("policy jail incomplete") == 1
    assert out["connect"]["ok"]  # honest: nothing was isolated, the test's listener answered


def test_require_jail_makes_it_an_error(listener: int) -> None:
    config, prefix = _without_namespaces()
    env = worker_env()
    code = ("from langprop.sandbox.jail import JailConfig, JailError, enter_jail\n"
            f"try:\n    enter_jail(JailConfig(require_jail=True, **{config!r}))\n"
            "except JailError as e:\n    print('JailError:', e)\nelse:\n    print('no error')\n")
    proc = subprocess.run([*prefix, sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          cwd=tempfile.gettempdir(), timeout=60)
    assert "JailError: policy jail incomplete" in proc.stdout and "require_jail" in proc.stdout, proc.stderr


def test_plan_shows_packages_not_the_checkout_and_skips_temp_dirs() -> None:
    plan = plan_jail(JailConfig(extra_ro_paths=(str(REPO / "pyproject.toml"),)))
    assert str(REPO / "langprop") in plan.visible and str(REPO / "pyproject.toml") in plan.visible
    assert str(REPO) not in plan.visible and "/" not in plan.visible and "/tmp" not in plan.visible
    assert all(not v.startswith(str(REPO / ".git")) for v in plan.visible)
    assert all(op[0] != "bind" or not op[1].startswith(("/proc", "/sys", "/home")) for op in plan.ops)


def test_config_is_checked() -> None:
    from langprop.sandbox.jail import JailError

    with pytest.raises(JailError, match="tmp_mb"):
        JailConfig(tmp_mb=0)
    with pytest.raises(JailError, match="user_namespace"):
        JailConfig(user_namespace="sometimes")  # type: ignore[arg-type]


def test_fsize_limit_sets_rlimit_fsize_in_a_child() -> None:
    code = ("import resource\nfrom langprop.sandbox.jail import fsize_limit\nfsize_limit(3)\n"
            "print(resource.getrlimit(resource.RLIMIT_FSIZE))\n")
    proc = subprocess.run([sys.executable, "-c", code], env=worker_env(), capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == f"({3 << 20}, {3 << 20})", proc.stderr
    assert callable(fsize_limit)
