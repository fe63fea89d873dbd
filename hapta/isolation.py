"""Workers and the gateway's secrets: what a worker process (rules/ hooks, functions/) may read of the gateway, and
the operating-system calls that keep the rest from it.

A worker runs the app's code and everything it imports, so a compromised dependency or an injection bug in a
function runs there with the worker's rights. What it gets of the gateway (docs/security.md, "Workers"):

- Its environment is an allowlist: WORKER_ENVIRON, and for rules/ the names App.hooks.environ adds; a function
  gets the values of the secrets it declared, per call. The gateway's own settings (`is_gateway_own`) are never a
  worker's, not even when declared.
- Every process of the gateway is not dumpable (`undumpable`): another process of the same user cannot read its
  /proc/<pid>/environ or /proc/<pid>/mem, nor attach to it. The children that need a secret start with as little
  of the environment as they need (the embedded PostgreSQL, pg_dump).
- Under a root gateway a worker never keeps root's powers (`confine`): it becomes HAPTA_WORKER_USER, or stays uid 0
  without a single capability (then it reads what root owns, as any process of the gateway's own user would, but
  no other user's files, no other user's processes, no /proc/<pid>/environ of the gateway).
- It leads a process group of its own, which ends with it (`end_group`): what a function started dies with it.

What a worker of the gateway's own user still can (a worker is no sandbox against the app's author): read the
files that user reads (.env, config.py, HAPTA_DATA_DIR and an embedded PostgreSQL's data), signal the gateway's
processes, start a process that leaves its group. A worker of another user (HAPTA_WORKER_USER) cannot.
"""
from __future__ import annotations

import ctypes
import logging
import os
import pwd
import signal
import stat
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

log = logging.getLogger("hapta.isolation")

# The gateway's own settings and the credentials of its upstreams (hapta/settings.py, libpq's PG*, S3, AWS): never a
# worker's, never a function's declared secret.
GATEWAY_OWN = frozenset({"DATABASE_URL", "DATABASE_REPLICA_URLS", "REDIS_URL", "SMTP_URL",
                         "PROMETHEUS_MULTIPROC_DIR"})
GATEWAY_OWN_PREFIXES = ("HAPTA_", "S3_", "PG", "AWS_")
# What every worker starts with: what Python and the locale need, and whether this is production. Nothing else of
# the gateway's environment, whatever its name.
WORKER_ENVIRON = frozenset({"PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV",
                            "HAPTA_ENV", "LD_LIBRARY_PATH", "LD_LIBRARY_PATH_ORIG"})
# The single binary (PyInstaller) starts a worker by running itself again: its bootloader tells the child where the
# parent unpacked everything through these (paths and levels, no secret); without them the child cannot start.
FROZEN_BOOTSTRAP = ("_PYI_", "_MEIPASS")


def is_gateway_own(name: str) -> bool:
    """The gateway's settings and its upstreams' credentials (HAPTA_ENV, which workers get, included)."""
    return name in GATEWAY_OWN or name.upper().startswith(GATEWAY_OWN_PREFIXES)


def refused_names(names: Iterable[str], app: Any) -> list[str]:
    """Which of `names` (a function's declared secrets, App.hooks.environ) no worker may have: the gateway's own
    settings, and a variable whose value the gateway holds as a secret of its own (an OAuth2 client secret that
    config.py read from the environment under any name)."""
    held = {provider.client_secret for provider in getattr(app, "oauth2", {}).values() if provider.client_secret}
    return [name for name in names if is_gateway_own(name) or os.environ.get(name) in held]


def keep_environ(extra: Iterable[str] = ()) -> Callable[[str], bool]:
    """Which variables a worker starts with: WORKER_ENVIRON, the locale's LC_*, and `extra` (never one of the
    gateway's own)."""
    chosen = frozenset(WORKER_ENVIRON | {name for name in extra if not is_gateway_own(name)})
    return lambda name: name in chosen or name.startswith(("LC_", *FROZEN_BOOTSTRAP))


_environ_lock = threading.Lock()


@contextmanager
def scrubbed_environ(keep: Callable[[str], bool]) -> Iterator[None]:
    """os.environ with only what `keep` allows, for the moment a child process is started.

    multiprocessing's 'spawn' (and pgserver's pg_ctl) exec the child with the parent's environment and take no
    other, so the rest leaves os.environ for the milliseconds of the start (a fork and an exec) and comes back
    right after: the child never held it, in os.environ or in /proc/<pid>/environ."""
    with _environ_lock:
        removed = {name: os.environ.pop(name) for name in list(os.environ) if not keep(name)}
        try:
            yield
        finally:
            os.environ.update(removed)


# ---- Linux: prctl, capabilities ------------------------------------------------------------------------------

PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_SECUREBITS, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT = 4, 24, 28, 38, 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
# uid 0 gets no capability from an exec and keeps none across a setuid; locked, so that the worker cannot undo it
SECURE_NOROOT = (1 << 0) | (1 << 1) | (1 << 2) | (1 << 3) | (1 << 5) | (1 << 6) | (1 << 7)
CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _libc():
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _prctl(option: int, value: int = 0) -> None:
    libc = _libc()
    if libc is None or not hasattr(libc, "prctl"):
        raise OSError("prctl is not available here")
    if libc.prctl(option, ctypes.c_ulong(value), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def undumpable() -> bool:
    """Make this process not dumpable: its /proc/<pid>/environ, /proc/<pid>/mem and a debugger's attach are then
    refused to every other process of its user (not to one with CAP_SYS_PTRACE: a root worker is confined
    first). False where the system has no prctl."""
    try:
        _prctl(PR_SET_DUMPABLE, 0)
    except OSError:
        return False
    return True


def _drop_capabilities() -> None:
    """uid 0 without any capability, for good: none effective, permitted, inheritable, ambient or in the bounding
    set, and the secure bits that keep an exec (of a set-user-ID program too) from giving any back."""
    libc = _libc()
    if libc is None or not hasattr(libc, "capset"):
        raise OSError("capset is not available here")
    _prctl(PR_SET_SECUREBITS, SECURE_NOROOT)
    try:
        last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError):
        last = 63
    for capability in range(last + 1):
        try:
            _prctl(PR_CAPBSET_DROP, capability)
        except OSError as exc:
            if exc.errno != 22:   # EINVAL: no such capability on this kernel
                raise
    try:
        _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError:
        pass   # a kernel before ambient capabilities (4.3) has none to clear
    header, data = _CapHeader(CAPABILITY_VERSION_3, 0), (_CapData * 2)()
    if libc.capset(ctypes.byref(header), data) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"capset: {os.strerror(errno)}")


@dataclass(frozen=True)
class WorkerUser:
    """HAPTA_WORKER_USER, looked up: whom workers run as under a root gateway."""
    name: str
    uid: int
    gid: int
    home: str

    @classmethod
    def find(cls, spec: str) -> "WorkerUser":
        """A user name or a numeric uid; ValueError (said in one line) when there is no such user or the gateway
        cannot become it."""
        try:
            entry = pwd.getpwuid(int(spec)) if spec.isdigit() else pwd.getpwnam(spec)
        except (KeyError, ValueError):
            raise ValueError(f"HAPTA_WORKER_USER: no user {spec!r} on this system") from None
        if entry.pw_uid == 0:
            raise ValueError("HAPTA_WORKER_USER must not be root: workers run as that user to have less than the "
                             "gateway")
        if os.geteuid() != 0:
            raise ValueError(f"HAPTA_WORKER_USER={spec} needs the gateway to run as root (it starts its workers as "
                             f"that user); as {pwd.getpwuid(os.geteuid()).pw_name} leave it unset")
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)


def confine(user: WorkerUser | None) -> None:
    """In a worker, before it imports any of the app's code: a process group (and session) of its own, then, under
    a root gateway, `user`'s identity or else uid 0 without capabilities, and no privilege from any exec.
    OSError when it cannot: the worker must not run the app's code with root's powers."""
    if os.getpgrp() != os.getpid():
        os.setsid()   # the group a kill of this worker ends, and no terminal of the gateway's
    if os.geteuid() == 0:
        if user is not None:
            os.setgroups([])
            os.setgid(user.gid)
            os.setuid(user.uid)   # from uid 0 to another: every capability goes with it
            os.environ["HOME"] = user.home
        else:
            _drop_capabilities()
    try:
        _prctl(PR_SET_NO_NEW_PRIVS, 1)   # no set-user-ID program raises it again (sudo, su, ...)
    except OSError:
        pass   # before Linux 3.5; what it adds, the secure bits or the other user already hold


def end_group(pid: int) -> None:
    """SIGKILL to the process group a worker leads: the worker and whatever it started that stayed in its group.
    Nothing when the group is gone (or is not the worker's: it had not made one yet)."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def end_own_group() -> None:
    """In a worker that is leaving: end what it started (it leads its group; never the gateway's)."""
    if os.getpgrp() == os.getpid():
        os.killpg(0, signal.SIGKILL)


def readable_by(path: Path, user: WorkerUser) -> bool:
    """Whether `user` may read `path` by its mode bits (owner, group, others), as far as they tell."""
    try:
        info = path.stat()
    except OSError:
        return False
    groups = {user.gid, *(os.getgrouplist(user.name, user.gid) if hasattr(os, "getgrouplist") else ())}
    if info.st_uid == user.uid:
        return bool(info.st_mode & stat.S_IRUSR)
    if info.st_gid in groups:
        return bool(info.st_mode & stat.S_IRGRP)
    return bool(info.st_mode & stat.S_IROTH)


def private_to_gateway(data_dir: Path, user: WorkerUser) -> None:
    """Under HAPTA_WORKER_USER: what the gateway writes from now on is its own (umask 077), and so is what it wrote
    before in HAPTA_DATA_DIR (mail with sign-in links, uploaded files, backups; the embedded PostgreSQL's folder is
    its server user's, private already). The data folder itself stays traversable: the embedded server's user
    reaches its folder through it."""
    os.umask(0o077)
    if not data_dir.is_dir():
        return
    for entry in data_dir.iterdir():
        if entry.name == "postgres" or entry.is_symlink():
            continue
        for path in [entry, *(entry.rglob("*") if entry.is_dir() else ())]:
            try:
                mode = path.lstat().st_mode
                if not stat.S_ISLNK(mode) and mode & 0o077:
                    path.chmod(stat.S_IMODE(mode) & ~0o077)
            except OSError as exc:
                log.warning("cannot make %s private to the gateway (%s): HAPTA_WORKER_USER %s may read it",
                            path, exc.strerror, user.name)
