"""A jail for policy processes: no network, and a read-only view of only what Python needs.

:func:`enter_jail` is called ONCE in the zygote, after its imports and before it forks any policy
process; every policy process forked afterwards inherits the jail, so a session's fork costs nothing
more. Like bubblewrap, it moves the zygote into

- a new **network namespace**: no interface is up, not even loopback, so every ``connect`` fails
  (127.0.0.1 included) and abstract unix sockets of the host are out of reach;
- a new **mount namespace** (propagation private) whose root is a small tmpfs holding read-only
  binds (``MS_BIND`` then ``MS_REMOUNT|MS_BIND|MS_RDONLY|MS_NOSUID|MS_NODEV``) of the Python
  installation, the ``sys.path`` directories (for a source root such as the project checkout: only
  its Python packages and top-level modules, never its run directories or ``.git``), packages of
  editable installs, ``/usr``, ``/lib*``, ``/bin``, ``/etc/ld.so.cache``, ``/etc/localtime``, the
  device nodes ``/dev/null``, ``/dev/zero``, ``/dev/random``, ``/dev/urandom``, and a fresh
  size-capped writable tmpfs at ``/tmp``. The old root is detached after ``pivot_root``: /work,
  /root/.cache, /home, /etc/shadow, checkpoints and the run directory do not exist inside. There is
  no ``/proc`` (a fresh one would need a PID namespace; numpy and gymnasium work without it).

As root (the container's root, with CAP_SYS_ADMIN) only the mount and network namespaces are new;
policy processes then drop to ``nobody`` (:mod:`langprop.sandbox.confine`). Without root a user
namespace is created first (uid/gid mapped to themselves, ``setgroups`` denied) and every capability
is dropped once the jail is built, so the zygote and its policies are the same unprivileged user as
before, only jailed. Where namespaces are refused (EPERM), :func:`enter_jail` returns a report
naming what is off and logs one warning, or raises :class:`JailError` when ``require_jail`` is set.

File descriptors held before the jail keep working (pipes, sockets, memfd pages, files opened
before). :func:`fsize_limit` adds RLIMIT_FSIZE in a policy process.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import platform
import resource
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from langprop.sandbox.types import SandboxError

log = logging.getLogger(__name__)

__all__ = ["JailConfig", "JailError", "JailReport", "enter_jail", "fsize_limit", "plan_jail"]

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC = 32, 1024, 2048, 4096, 16384
MS_PRIVATE, MS_RELATIME = 1 << 18, 1 << 21
MNT_DETACH = 2
# statvfs f_flag bits that a remount in a user namespace must keep (they are locked there)
_ST_KEEP = ((os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC), (os.ST_NOSUID, MS_NOSUID),
            (os.ST_NOATIME, MS_NOATIME), (os.ST_NODIRATIME, MS_NODIRATIME), (os.ST_RELATIME, MS_RELATIME))
_SYS_PIVOT_ROOT = {"x86_64": 155, "amd64": 155, "aarch64": 41, "arm64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}
_PR_CAPBSET_DROP = 24
_CAP_VERSION_3 = 0x20080522

SYSTEM_PATHS = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/etc/ld.so.cache", "/etc/localtime")
DEVICES = ("/dev/null", "/dev/zero", "/dev/random", "/dev/urandom")
# A sys.path entry that is one of these is never bound (e.g. the zygote's cwd, the host's /tmp).
_NEVER_BIND = ("/", "/tmp", "/var/tmp", "/dev/shm", "/root", "/home", "/work")
_BASE = "/tmp"  # where the new root is assembled (inside our own mount namespace; the host never sees it)


class JailError(SandboxError):
    """The jail could not be built and ``require_jail`` is set (or it failed half-way)."""


@dataclass(frozen=True)
class JailConfig:
    """What :func:`enter_jail` isolates. ``tmp_mb``/``tmp_inodes`` cap the writable ``/tmp``;
    ``extra_ro_paths`` are more host paths to show read-only; ``user_namespace``: "auto" creates one
    only when not root, "always"/"never" force it (as root, "always" maps root to itself: not for
    use with the policy processes' drop to ``nobody``, only for tests)."""

    network: bool = True
    filesystem: bool = True
    require_jail: bool = False
    tmp_mb: int = 64
    tmp_inodes: int = 4096
    extra_ro_paths: tuple[str, ...] = ()
    user_namespace: Literal["auto", "always", "never"] = "auto"

    def __post_init__(self) -> None:
        if self.tmp_mb <= 0 or self.tmp_inodes <= 0:
            raise JailError(f"JailConfig.tmp_mb and tmp_inodes must be > 0, got {self.tmp_mb}, {self.tmp_inodes}")
        if self.user_namespace not in ("auto", "always", "never"):
            raise JailError(f"JailConfig.user_namespace must be auto|always|never, got {self.user_namespace!r}")


@dataclass(frozen=True)
class JailReport:
    """What the jail does. ``off`` names each requested protection that is not in force, and why;
    ``visible`` lists the host paths shown read-only inside; ``skipped`` the sys.path entries left out."""

    network_isolated: bool = False
    filesystem_isolated: bool = False
    user_namespace: bool = False
    tmp_mb: int | None = None
    visible: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    off: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def active(self) -> bool:
        """Every requested protection is in force."""
        return not self.off

    def describe(self) -> str:
        if self.active:
            what = [w for w, on in (("network", self.network_isolated), ("filesystem", self.filesystem_isolated)) if on]
            return f"policy jail on ({', '.join(what) or 'nothing requested'}; {len(self.visible)} read-only paths)"
        return "policy jail incomplete: " + "; ".join(self.off)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JailReport:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    def reset_tmp(self) -> None:
        """Empty the jail's ``/tmp`` (e.g. in the zygote between two sessions, so that nothing one
        policy wrote is seen by the next, and a full /tmp does not outlive its session). Does nothing
        unless the file-system jail is in force: outside it, /tmp is the host's."""
        if not self.filesystem_isolated:
            return
        _remove_contents("/tmp")


def _remove_contents(path: str) -> None:
    with os.scandir(path) as it:
        entries = list(it)
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                _remove_contents(entry.path)
                os.rmdir(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:  # a mount point, or gone already
            log.debug("could not remove %s", entry.path, exc_info=True)


def fsize_limit(mb: int) -> None:
    """RLIMIT_FSIZE for the calling (policy) process: no file it writes grows past ``mb`` MiB. Python
    ignores SIGXFSZ, so an oversized write raises ``OSError(EFBIG)`` instead of killing the process."""
    limit = int(mb) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


# ---- the plan: computed on the host's view, before anything changes -------------------------------
@dataclass
class _Plan:
    ops: list[tuple[str, ...]] = field(default_factory=list)  # ("dir"|"file", p) ("link", p, target) ("bind", p, dev)
    visible: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    _made: set[str] = field(default_factory=set)

    def _parents(self, real: str) -> None:
        parts = real.strip("/").split("/")
        for i in range(1, len(parts)):
            self._dir("/" + "/".join(parts[:i]))

    def _dir(self, p: str) -> None:
        if p not in self._made:
            self._made.add(p)
            self.ops.append(("dir", p))

    def _links(self, path: str, depth: int = 0) -> None:
        """Recreate every symlink on the way to ``path`` (e.g. /lib -> usr/lib), targets as on the host."""
        cur = ""
        for comp in path.strip("/").split("/"):
            cur = f"{cur}/{comp}"
            if os.path.islink(cur) and cur not in self._made and depth < 16:
                real = os.path.realpath(cur)
                self._links(os.path.dirname(cur), depth + 1)
                self._parents(cur)
                self._made.add(cur)
                self.ops.append(("link", cur, os.readlink(cur)))
                self._links(real, depth + 1)
                cur = real

    def add(self, path: str, device: bool = False) -> None:
        path = os.path.abspath(path)
        if not os.path.exists(path):
            return
        real = os.path.realpath(path)
        if any(real == v or real.startswith(v.rstrip("/") + "/") for v in self.visible):
            self._links(path)
            return
        if any(v.startswith(real.rstrip("/") + "/") for v in self.visible):
            # a parent of earlier binds: bind it first (binds are sorted parent-first before use)
            self.visible[:] = [v for v in self.visible if not v.startswith(real.rstrip("/") + "/")]
            self.ops[:] = [op for op in self.ops if not (op[0] in ("bind", "file") and op[1].startswith(real + "/"))]
        self._links(path)
        self._parents(real)
        self.visible.append(real)
        if os.path.isdir(real):
            self._dir(real)
        else:
            self.ops.append(("file", real))
        self.ops.append(("bind", real, "dev" if device else ""))


def _editable_paths() -> list[str]:
    """Package directories of editable installs (setuptools' finders keep them in MAPPING/NAMESPACES)."""
    out: list[str] = []
    for finder in sys.meta_path:
        module = sys.modules.get(getattr(finder, "__module__", "") or "")
        mapping = getattr(module, "MAPPING", None)
        if isinstance(mapping, dict):
            out += [p for p in mapping.values() if isinstance(p, str)]
        namespaces = getattr(module, "NAMESPACES", None)
        if isinstance(namespaces, dict):
            out += [p for ps in namespaces.values() if isinstance(ps, list) for p in ps if isinstance(p, str)]
    return out


def _source_root_entries(root: str) -> list[str]:
    """What a plain source directory on sys.path contributes: its packages and top-level modules."""
    out = []
    try:
        with os.scandir(root) as it:
            for e in it:
                if e.name.startswith("."):
                    continue
                package = e.is_dir() and os.path.exists(os.path.join(e.path, "__init__.py"))
                if package or (e.is_file() and e.name.endswith((".py", ".so", ".pyd"))):
                    out.append(e.path)
    except OSError:
        pass
    return sorted(out)


def plan_jail(config: JailConfig = JailConfig()) -> _Plan:
    """The read-only binds, symlinks and mount points of the new root, from the current sys.path."""
    plan = _Plan()
    prefixes = list(dict.fromkeys(os.path.realpath(p) for p in (sys.base_prefix, sys.prefix, sys.exec_prefix)))
    wanted: list[str] = [*SYSTEM_PATHS, *prefixes]
    for entry in sys.path:
        if not entry or not os.path.exists(entry):
            continue
        real = os.path.realpath(entry)
        installed = any(real == p or real.startswith(p + "/") for p in prefixes)
        if installed or os.path.basename(real) in ("site-packages", "dist-packages") or not os.path.isdir(real):
            wanted.append(entry)  # the whole directory (or zip file)
        elif real in _NEVER_BIND or real == os.path.realpath(os.path.expanduser("~")):
            plan.skipped.append(entry)
        else:
            wanted += _source_root_entries(real)
    wanted += _editable_paths()
    # Top-level modules already imported from anywhere else (a harness on an odd path) stay importable.
    for name, module in list(sys.modules.items()):
        if "." in name or module is None or name == "__main__":
            continue
        where = getattr(module, "__file__", None)
        if where:
            wanted.append(os.path.dirname(where) if hasattr(module, "__path__") else where)
    wanted += list(config.extra_ro_paths)
    # parents first, so that a child path is found covered instead of bound twice
    reals = sorted(dict.fromkeys(wanted), key=lambda p: (os.path.realpath(p).count("/"), p) if os.path.exists(p) else (0, p))
    for p in reals:
        if os.path.realpath(p) in ("/",) or p in ("/tmp", "/dev"):
            continue
        plan.add(p)
    for dev in DEVICES:
        plan.add(dev, device=True)
    return plan


# ---- system calls ---------------------------------------------------------------------------------
def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(libc: Any, src: str | None, dst: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    def enc(s: str | None) -> bytes | None:
        return None if s is None else s.encode()

    _check(libc.mount(enc(src), enc(dst), enc(fstype), ctypes.c_ulong(flags), enc(data)),
           f"mount({src!r}, {dst!r}, {fstype!r}, {flags:#x})")


def _pivot_root(libc: Any, new: str, old: str) -> None:
    nr = _SYS_PIVOT_ROOT.get(platform.machine().lower())
    if nr is None:
        raise OSError(errno.ENOSYS, f"pivot_root: unknown architecture {platform.machine()}")
    _check(libc.syscall(ctypes.c_long(nr), new.encode(), old.encode()), f"pivot_root({new!r}, {old!r})")


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _mountpoints_under(prefix: str) -> list[str]:
    """Mount points at or below ``prefix`` (as seen from the current root), from mountinfo."""
    out = []
    with open("/oldroot/proc/self/mountinfo", "rb") as f:
        for line in f:
            point = line.split(b" ")[4].decode("unicode_escape" if b"\\" in line else "utf-8")
            if point == prefix or point.startswith(prefix.rstrip("/") + "/"):
                out.append(point)
    return out


def _remount_ro(libc: Any, point: str, device: bool) -> None:
    flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | (0 if device else MS_NODEV)
    st = os.statvfs(point).f_flag
    for st_bit, ms_bit in _ST_KEEP:
        if st & st_bit:
            flags |= ms_bit
    _mount(libc, None, point, None, flags)


def _drop_capabilities(libc: Any) -> None:
    """No capability left (used after building the jail inside our own user namespace)."""
    for cap in range(64):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() == errno.EINVAL:
            break

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    _check(libc.capset(ctypes.byref(Header(_CAP_VERSION_3, 0)), (Data * 2)()), "capset")


def _build_root(libc: Any, plan: _Plan, config: JailConfig) -> None:
    """Assemble the new root on a tmpfs and pivot into it (bubblewrap's sequence)."""
    _mount(libc, None, "/", None, MS_REC | MS_PRIVATE)
    _mount(libc, "tmpfs", _BASE, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k")
    os.chdir(_BASE)
    os.mkdir("newroot", 0o755)
    os.mkdir("oldroot", 0o755)
    _mount(libc, "tmpfs", "newroot", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m,nr_inodes=16384")
    _pivot_root(libc, ".", "oldroot")
    os.chdir("/")
    # From here on a failure cannot be undone: the caller turns it into JailError.
    os.mkdir("/newroot/tmp", 0o1777)
    _mount(libc, "tmpfs", "/newroot/tmp", "tmpfs", MS_NOSUID | MS_NODEV,
           f"mode=1777,size={config.tmp_mb}m,nr_inodes={config.tmp_inodes}")
    for op in plan.ops:
        dst = "/newroot" + op[1]
        if op[0] == "dir":
            if not os.path.isdir(dst):
                os.mkdir(dst, 0o755)
        elif op[0] == "file":
            if not os.path.exists(dst):
                os.close(os.open(dst, os.O_WRONLY | os.O_CREAT, 0o644))
        elif op[0] == "link":
            if not os.path.lexists(dst):
                os.symlink(op[2], dst)
        else:  # bind, then read-only (each mount below it too)
            _mount(libc, "/oldroot" + op[1], dst, None, MS_BIND | MS_REC)
            for point in _mountpoints_under(dst):
                _remount_ro(libc, point, device=op[2] == "dev")
    _mount(libc, None, "/newroot", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    _check(libc.umount2(b"/oldroot", MNT_DETACH), "umount2(/oldroot)")
    os.chdir("/newroot")
    _pivot_root(libc, ".", ".")
    _check(libc.umount2(b".", MNT_DETACH), "umount2(.)")
    os.chdir("/")


def _threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def enter_jail(config: JailConfig = JailConfig()) -> JailReport:
    """Jail the calling process (and every process it forks afterwards). Call once, single-threaded,
    after the imports that must come from outside the jail and before forking policy processes."""
    t0 = time.monotonic()
    if not (config.network or config.filesystem):
        return JailReport(seconds=time.monotonic() - t0)
    libc = _libc()
    plan = plan_jail(config) if config.filesystem else _Plan()
    euid, egid = os.geteuid(), os.getegid()
    userns = config.user_namespace == "always" or (config.user_namespace == "auto" and euid != 0)
    flags = (CLONE_NEWNS if config.filesystem else 0) | (CLONE_NEWNET if config.network else 0)
    if userns:
        flags |= CLONE_NEWUSER
    off: list[str] = []
    if userns and _threads() > 1:
        off.append(f"all: a user namespace needs a single-threaded process ({_threads()} threads; "
                   "set OPENBLAS_NUM_THREADS=1/OMP_NUM_THREADS=1 and start no thread before the jail)")
    elif libc.unshare(flags) != 0:
        err = ctypes.get_errno()
        off.append(f"all: unshare({'user, ' if userns else ''}mount, network namespaces) failed: "
                   f"{errno.errorcode.get(err, err)} ({os.strerror(err)})")
    if off:
        requested = [w for w, on in (("network", config.network), ("filesystem", config.filesystem)) if on]
        off = [f"{w} isolation off" for w in requested] + off[-1:]
        return _degraded(config, off, plan, t0)
    try:
        if userns:
            _write("/proc/self/setgroups", "deny")
            _write("/proc/self/uid_map", f"{euid} {euid} 1\n")
            _write("/proc/self/gid_map", f"{egid} {egid} 1\n")
        if config.filesystem:
            _build_root(libc, plan, config)
            os.environ["TMPDIR"] = "/tmp"
            if not os.path.isdir(os.environ.get("HOME", "/")):
                os.environ["HOME"] = "/tmp"
            if "tempfile" in sys.modules:
                sys.modules["tempfile"].tempdir = None
        if userns:
            _drop_capabilities(libc)
    except OSError as exc:
        # The namespaces exist and the root may be half-built: never carry on as if jailed.
        raise JailError(f"building the policy jail failed half-way: {exc}") from exc
    report = JailReport(
        network_isolated=config.network, filesystem_isolated=config.filesystem, user_namespace=userns,
        tmp_mb=config.tmp_mb if config.filesystem else None, visible=tuple(plan.visible),
        skipped=tuple(plan.skipped), seconds=time.monotonic() - t0)
    log.debug("%s in %.3fs", report.describe(), report.seconds)
    return report


def _degraded(config: JailConfig, off: list[str], plan: _Plan, t0: float) -> JailReport:
    report = JailReport(skipped=tuple(plan.skipped), off=tuple(off), seconds=time.monotonic() - t0)
    if config.require_jail:
        raise JailError(report.describe() + " (require_jail is set)")
    log.warning("%s; policies can reach the network and the file system", report.describe())
    return report
