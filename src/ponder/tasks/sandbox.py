"""Run untrusted Python (model-written code and its tests) with limits, and kill all of it afterwards.

Each run gets a fresh temporary directory as its working directory, a minimal environment, the
isolated interpreter (``python -I``), its own session and process group, and resource limits: CPU
seconds, address space, file size, process count, no core files. Where the kernel allows it (as root,
and unprivileged on most distributions) the program also gets new network and PID namespaces (and a
user namespace when ponder is not root): no network at all (not even loopback), its own ``/proc`` that
shows only its own processes (``proc_isolated``), and when the program's first process ends, the
kernel kills every process it left behind, even ones that left its process group. Without namespaces
the run still happens, with the missing isolation false in the result and logged once per process.

As root, the program runs as a user and group id of its own (a random id no account has, no
supplementary groups, ``no_new_privs``), so the process limit applies and runs cannot signal each
other; if that drop fails the program does not run. When the interpreter lives where an unprivileged
user cannot reach it (under ``/root``), the program keeps one capability, ``CAP_DAC_READ_SEARCH``: it
may read every file, as root could, but nothing more.

The limits are applied by a short bootstrap interpreter that then ``exec``s the program, rather than in
``subprocess``'s ``preexec_fn``: graders run in threads, and ``preexec_fn`` is not safe in a process
with threads (the child can deadlock before ``exec``).

The file system: where the kernel allows a new mount namespace (as root, and inside the new user
namespace otherwise), every mount is remounted read-only for the program except its working directory
(``files_isolated=True``): it can read what the calling user can, but write only there (and to device
files such as ``/dev/null``). Without a mount namespace the program can write whatever its user can.

Grading goes through ``run_checks``: the verdict is the harness's, never the candidate's exit code.
``arun_checks`` ties a run to the awaiting task: cancelling the task kills the run at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import math
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

OUTPUT_LIMIT = 64 * 1024  # bytes of stdout and of stderr kept in the result
#: as root, each run takes a user and group id of its own from here: no user has them, so nothing else
#: counts towards its process limit, and runs cannot signal each other
UNPRIVILEGED_IDS = range(1_000_000_000, 1_000_000_000 + (1 << 24))
_NOTED: set[str] = set()  # kinds of missing isolation already logged
_MIB = 1024 * 1024
_ENVIRONMENT = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}

# Runs as ``python -I -S -c _BOOTSTRAP SETTINGS`` in the new session, then becomes (or starts) the program.
_BOOTSTRAP = r"""
import ctypes, json, os, resource, signal, sys

settings = json.loads(sys.argv[1])
CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWPID = 0x10000000, 0x40000000, 0x20000000
CLONE_NEWNS, PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS, PR_SET_KEEPCAPS = 0x00020000, 1, 38, 8
PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_DAC_READ_SEARCH = 47, 2, 2
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18
libc = ctypes.CDLL(None, use_errno=True)
unshare, prctl, mount = (getattr(libc, name, None) for name in ("unshare", "prctl", "mount"))
if mount is not None:
    mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]


def make_read_only():  # in a new mount namespace: every mount read-only but the working directory
    workdir = os.getcwd().encode()
    if mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        return False
    if mount(workdir, workdir, None, MS_BIND, None) != 0:
        return False
    os.chdir(workdir)  # onto the new mount: the old working directory is on the one made read-only
    with open("/proc/self/mountinfo", "rb") as file:
        points = [line.split()[4] for line in file]
    done = True
    for point in dict.fromkeys(points):
        point = point.replace(b"\\040", b" ").replace(b"\\011", b"\t").replace(b"\\134", b"\\")
        if point == workdir:
            continue
        try:
            kept = os.statvfs(point).f_flag & (2 | 4 | 8 | 1024 | 2048)  # nosuid nodev noexec noatime
        except OSError:
            continue
        if mount(None, point, None, MS_BIND | MS_REMOUNT | MS_RDONLY | kept, None) != 0:
            done = False
    return done


def drop_root(user, group, search):  # keep CAP_DAC_READ_SEARCH when the interpreter is under /root
    os.setgroups([])
    os.setresgid(group, group, group)
    if search and prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl")
    os.setresuid(user, user, user)
    if not search:
        return
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    kept = 1 << CAP_DAC_READ_SEARCH
    data = (ctypes.c_uint32 * 6)(kept, kept, kept, 0, 0, 0)  # effective, permitted, inheritable
    if libc.capset(header, data) != 0:
        raise OSError(ctypes.get_errno(), "capset")
    if prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_DAC_READ_SEARCH, 0, 0) != 0:  # kept across exec
        raise OSError(ctypes.get_errno(), "capset")


def become_program(isolation):  # the last steps before exec, in the process that becomes the program
    if isolation["pid"] and own_mounts:  # a /proc that shows only this PID namespace's processes
        isolation["proc"] = mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None) == 0
    if root:  # as root RLIMIT_NPROC does not apply: become an unprivileged user, or do not run at all
        try:
            drop_root(*settings["user"])
        except OSError as error:
            os.write(2, f"sandbox: cannot drop root privileges ({error.strerror})\n".encode())
            os._exit(125)
    isolation["user"] = os.getuid() != 0
    if prctl is not None:
        prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)  # no set-user-ID program gives root back
    for name, value in settings["limits"].items():
        limit = getattr(resource, name)
        _, hard = resource.getrlimit(limit)
        soft, new_hard = value
        if hard != resource.RLIM_INFINITY:
            soft, new_hard = min(soft, hard), min(new_hard, hard)
        resource.setrlimit(limit, (soft, new_hard))
    os.write(status, json.dumps(isolation).encode())
    os.close(status)
    argv = settings["argv"]
    os.execv(argv[0], argv)


root = os.geteuid() == 0
choices = (
    (CLONE_NEWNET | CLONE_NEWPID, CLONE_NEWNET)  # root needs no user namespace, and drops to a user later
    if root
    else (CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWPID, CLONE_NEWUSER | CLONE_NEWNET, CLONE_NEWNET)
)
flags = 0
if unshare is not None:
    for candidate in choices:
        if unshare(candidate) == 0:
            flags = candidate
            break
own_mounts = unshare is not None and mount is not None and unshare(CLONE_NEWNS) == 0
read_only = own_mounts and make_read_only()
status = settings["status_fd"]
isolation = {
    "network": bool(flags & CLONE_NEWNET),
    "pid": bool(flags & CLONE_NEWPID),
    "files": read_only,
    "proc": False,
}
if not flags & CLONE_NEWPID:
    become_program(isolation)
child = os.fork()
if child == 0:  # process 1 of the new PID namespace: when it ends, the kernel kills the rest
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    become_program(isolation)
os.close(status)
_, wait_status = os.waitpid(child, 0)
if os.WIFSIGNALED(wait_status):
    number = os.WTERMSIG(wait_status)
    signal.signal(number, signal.SIG_DFL)
    os.kill(os.getpid(), number)
    os._exit(128 + number)
os._exit(os.waitstatus_to_exitcode(wait_status))
"""

# Runs as ``python -I main.py CONFIG`` in the sandbox for ``run_checks``: the checks' process.
_HARNESS = r"""
import builtins, ctypes, json, os, pickle, signal, struct, sys, traceback

PR_SET_DUMPABLE = 4
PLAIN = {list: "list", tuple: "tuple", set: "set", frozenset: "frozenset"}


def send(descriptor, data):
    data = struct.pack("!Q", len(data)) + data
    while data:
        data = data[os.write(descriptor, data):]


def receive(descriptor):
    header = read_exactly(descriptor, 8)
    return None if header is None else read_exactly(descriptor, struct.unpack("!Q", header)[0])


def read_exactly(descriptor, size):
    parts, left = [], size
    while left:
        part = os.read(descriptor, min(left, 1 << 20))
        if not part:
            return None
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def encode(value):  # in the candidate's process: a value as plain data, subclasses as their base type
    if value is None:
        return ["none", None]
    if isinstance(value, bool):
        return ["bool", bool(value)]
    if isinstance(value, int):
        return ["int", hex(int(value))]
    if isinstance(value, float):
        return ["float", float(value).hex()]
    if isinstance(value, complex):
        return ["complex", [value.real.hex(), value.imag.hex()]]
    if isinstance(value, str):
        return ["str", str.__str__(value)]
    if isinstance(value, (bytes, bytearray)):
        return ["bytes", bytes(value).hex()]
    if isinstance(value, dict):
        return ["dict", [[encode(key), encode(item)] for key, item in dict.items(value)]]
    for kind, name in PLAIN.items():
        if isinstance(value, kind):
            return [name, [encode(item) for item in kind.__iter__(value)]]
    raise TypeError(f"returned a {type(value).__name__}, not a plain value")


def decode(item):  # in the checks' process: only exact builtin types come out, whatever was sent
    kind, value = item
    if kind == "none" and value is None:
        return None
    if kind == "bool" and type(value) is bool:
        return value
    if kind == "int" and type(value) is str:
        return int(value, 16)
    if kind == "float" and type(value) is str:
        return float.fromhex(value)
    if kind == "complex" and type(value) is list and all(type(part) is str for part in value):
        real, imaginary = value
        return complex(float.fromhex(real), float.fromhex(imaginary))
    if kind == "str" and type(value) is str:
        return value
    if kind == "bytes" and type(value) is str:
        return bytes.fromhex(value)
    if kind == "dict" and type(value) is list:
        return {decode(key): decode(item) for key, item in value}
    for container, name in PLAIN.items():
        if kind == name and type(value) is list:
            return container(decode(part) for part in value)
    raise ValueError("the candidate's process sent a malformed value")


def serve(code, requests, replies):  # the candidate's process: define its code, then answer calls
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    try:
        exec(compile(code, "candidate.py", "exec"), namespace)
    except BaseException:
        traceback.print_exc()
        return 1
    names = [name for name, value in namespace.items() if callable(value) and not isinstance(value, type)]
    send(replies, json.dumps(names).encode())
    while (request := receive(requests)) is not None:
        name, args, kwargs = pickle.loads(request)
        try:
            reply = ["value", encode(namespace[name](*args, **kwargs))]
        except BaseException as error:
            reply = ["raise", type(error).__name__, str(error)[:1000]]
        send(replies, json.dumps(reply).encode())
    return 0


def call(requests, replies, name, args, kwargs):  # in the checks' process: one call of a candidate's function
    try:
        request = pickle.dumps((name, args, kwargs))
    except Exception as error:
        raise TypeError(f"cannot pass these arguments to {name}: {error}") from None
    send(requests, request)
    data = receive(replies)
    if data is None:
        raise RuntimeError(f"the candidate's process ended during a call to {name}")
    reply = json.loads(data)
    if reply[0] == "value":
        return decode(reply[1])
    kind = getattr(builtins, str(reply[1]), None)
    if isinstance(kind, type) and issubclass(kind, Exception):
        raise kind(str(reply[2]))
    raise RuntimeError(f"{reply[1]}: {reply[2]}")


def proxy(requests, replies, name):
    def function(*args, **kwargs):
        return call(requests, replies, name, args, kwargs)

    function.__name__ = function.__qualname__ = name
    return function


def ended_early(child):  # the candidate's code ended before it could be called: say how, and fail
    _, status = os.waitpid(child, 0)
    if os.WIFSIGNALED(status):
        print(f"the candidate was killed by {signal.Signals(os.WTERMSIG(status)).name}", file=sys.stderr)
    elif os.waitstatus_to_exitcode(status) == 0:
        print("the candidate's code exited before the checks ran", file=sys.stderr)
    sys.stderr.flush()
    os._exit(1)


def main():
    config = json.loads(sys.argv[1])
    sources = {}
    for name in ("candidate.py", "setup.py", "checks.py"):
        with open(name, encoding="utf-8") as file:
            sources[name] = file.read()
    ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # no reading this process's memory or files
    requests_read, requests_write = os.pipe()
    replies_read, replies_write = os.pipe()
    child = os.fork()
    if child == 0:
        for descriptor in (config["secret"], config["verdict"], requests_write, replies_read):
            os.close(descriptor)
        code = 1
        try:
            code = serve(sources["candidate.py"], requests_read, replies_write)
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except BaseException:
                    pass
            os._exit(code)
    os.close(requests_read)
    os.close(replies_write)
    nonce = os.read(config["secret"], 256)  # only now, so the candidate's process never held it
    os.close(config["secret"])
    ready = receive(replies_read)
    if ready is None:
        ended_early(child)
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    exec(compile(sources["setup.py"], "setup.py", "exec"), namespace)
    trusted = set(namespace)
    for name in json.loads(ready):
        if type(name) is str and (name not in trusted or name == config["entry_point"]):
            namespace[name] = proxy(requests_write, replies_read, name)
    exec(compile(sources["checks.py"], "checks.py", "exec"), namespace)
    sys.stdout.flush()
    os.write(config["verdict"], nonce)  # every check ran and passed
    os._exit(0)


main()
"""


@dataclass(frozen=True)
class SandboxResult:
    """How a sandboxed run ended. ``exit_code`` is negative when a signal ended it (as in subprocess)."""

    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool
    seconds: float
    network_isolated: bool = False
    pid_isolated: bool = False
    #: every file system was read-only to the program except its working directory
    files_isolated: bool = False
    #: the program saw its own /proc: only the processes of its PID namespace
    proc_isolated: bool = False
    #: the program ran under a user other than root (ponder as root drops to an unprivileged one)
    unprivileged: bool = False
    #: ``run_checks`` only: the harness reported that every check ran and passed (None for ``run_python``)
    verdict: bool | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and self.verdict is not False


@dataclass(frozen=True)
class Limits:
    """What one run may use: wall-clock seconds (CPU seconds follow), memory, processes, file size."""

    timeout: float = 10.0
    memory_mb: int = 1024
    max_processes: int = 64
    max_file_mb: int = 16


class Cancellation:
    """Lets another thread end a run at once: the awaiting asyncio task is cancelled, so is its run.

    The group is killed under a lock and only while its leader is unreaped, so the kill can never reach
    a process that reused the group's id.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._group: int | None = None
        self.cancelled = False

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            if self._group is not None:
                _kill_group(self._group)

    def started(self, group: int) -> None:
        with self._lock:
            self._group = group
            if self.cancelled:
                _kill_group(group)

    def reaping(self) -> None:
        with self._lock:
            self._group = None


def run_python(
    code: str,
    timeout: float = 10.0,
    memory_mb: int = 1024,
    max_processes: int = 64,
    max_file_mb: int = 16,
    cancellation: Cancellation | None = None,
) -> SandboxResult:
    """Run ``code`` as a Python program in the sandbox; wall-clock ``timeout`` in seconds.

    On timeout the whole process group is killed (and the PID namespace with it). Leftover processes
    are killed after a normal exit too. Safe to call from several threads at once. Its exit code is the
    program's own: use ``run_checks`` when the program is untrusted code being graded.
    """
    limits = Limits(timeout, memory_mb, max_processes, max_file_mb)
    return _run({"main.py": code}, [], limits, cancellation)


def run_checks(
    candidate: str,
    checks: str,
    setup: str = "",
    entry_point: str | None = None,
    limits: Limits = Limits(),
    cancellation: Cancellation | None = None,
) -> SandboxResult:
    """Grade ``candidate`` by ``checks``; ``result.ok`` only if every check ran and passed.

    The candidate's code runs in a process of its own that answers calls; ``setup`` (trusted text such
    as a problem's helper functions) and ``checks`` run in another, where each function the candidate
    defines (but not one ``setup`` defines, except ``entry_point``) is a stand-in that calls it.
    Arguments go to the candidate pickled; values come back as plain data and are rebuilt as exact
    builtin types (int, float, complex, bool, str, bytes, None, list, tuple, dict, set, frozenset), so
    a value's own ``__eq__`` never takes part in a check. The checks' process ends by writing a nonce
    it received after the candidate's process was started to a pipe that process never held; the
    result's ``verdict`` is whether the nonce came back. Exiting early, exit hooks and exception hooks
    in the candidate therefore fail, and so does a check that calls a candidate's class or passes or
    receives anything but plain values.
    """
    nonce = secrets.token_hex(16).encode()
    secret_read, secret_write = os.pipe()
    verdict_read, verdict_write = os.pipe()
    os.write(secret_write, nonce)
    os.close(secret_write)
    config = {"secret": secret_read, "verdict": verdict_write, "entry_point": entry_point}
    reported = b""
    files = {"main.py": _HARNESS, "candidate.py": candidate, "setup.py": setup, "checks.py": checks}
    try:
        result = _run(files, [json.dumps(config)], limits, cancellation, (secret_read, verdict_write))
        os.set_blocking(verdict_read, False)
        with contextlib.suppress(BlockingIOError):
            reported = os.read(verdict_read, len(nonce) + 1)
    finally:
        for descriptor in (secret_read, verdict_write, verdict_read):
            with contextlib.suppress(OSError):
                os.close(descriptor)
    return dataclasses.replace(result, verdict=secrets.compare_digest(reported, nonce))


async def arun_checks(
    candidate: str,
    checks: str,
    setup: str = "",
    entry_point: str | None = None,
    limits: Limits = Limits(),
) -> SandboxResult:
    """``run_checks`` owned by the awaiting task: cancelling the task kills the run at once."""
    cancellation = Cancellation()
    run = asyncio.ensure_future(
        asyncio.to_thread(run_checks, candidate, checks, setup, entry_point, limits, cancellation)
    )
    try:
        return await asyncio.shield(run)
    except asyncio.CancelledError:
        cancellation.cancel()  # the thread's wait ends as the group dies; it returns within milliseconds
        raise


def _run(
    files: dict[str, str],
    arguments: list[str],
    limits: Limits,
    cancellation: Cancellation | None,
    descriptors: tuple[int, ...] = (),
) -> SandboxResult:
    """Run ``main.py`` of ``files`` (written to a fresh working directory) in the sandbox."""
    cpu_seconds = math.ceil(limits.timeout) + 1
    root = Path(tempfile.mkdtemp(prefix="ponder-sandbox-"))
    try:
        workdir = root / "work"
        workdir.mkdir()
        for name, text in files.items():
            (workdir / name).write_text(text, encoding="utf-8")
        user = UNPRIVILEGED_IDS[secrets.randbelow(len(UNPRIVILEGED_IDS))]
        if os.geteuid() == 0:  # the program runs as an unprivileged user: its directory is its own
            os.chown(workdir, user, user)
            root.chmod(0o711)
        status_read, status_write = os.pipe()
        settings = {
            "limits": {
                "RLIMIT_CPU": [cpu_seconds, cpu_seconds + 1],
                "RLIMIT_AS": [limits.memory_mb * _MIB] * 2,
                "RLIMIT_FSIZE": [limits.max_file_mb * _MIB] * 2,
                "RLIMIT_NPROC": [limits.max_processes] * 2,
                "RLIMIT_CORE": [0, 0],
            },
            "status_fd": status_write,
            "user": [user, user, _interpreter_is_private()],
            "argv": [sys.executable, "-I", "main.py", *arguments],
        }
        with (
            os.fdopen(status_read, "rb") as status,
            open(root / "stdout", "wb") as stdout,
            open(root / "stderr", "wb") as stderr,
        ):
            started = time.monotonic()
            try:
                process = subprocess.Popen(
                    [sys.executable, "-I", "-S", "-c", _BOOTSTRAP, json.dumps(settings)],
                    stdin=subprocess.DEVNULL,
                    stdout=stdout,
                    stderr=stderr,
                    cwd=workdir,
                    env={**_ENVIRONMENT, "HOME": str(workdir), "TMPDIR": str(workdir)},
                    start_new_session=True,
                    pass_fds=(status_write, *descriptors),
                )
            finally:
                os.close(status_write)
            if cancellation is not None:
                cancellation.started(process.pid)
            timed_out = not _wait_without_reaping(process, limits.timeout)
            _kill_group(process.pid)  # the leader is a zombie until reaped, so its group id is still ours
            if cancellation is not None:
                cancellation.reaping()
            exit_code = process.wait()
            seconds = time.monotonic() - started
            isolation = json.loads(status.read() or b"{}")  # empty if the bootstrap died before writing
        result = SandboxResult(
            exit_code=exit_code,
            stdout=_read_output(root / "stdout"),
            stderr=_read_output(root / "stderr"),
            timed_out=timed_out,
            seconds=seconds,
            network_isolated=isolation.get("network", False),
            pid_isolated=isolation.get("pid", False),
            files_isolated=isolation.get("files", False),
            proc_isolated=isolation.get("proc", False),
            unprivileged=isolation.get("user", False),
        )
        _note_missing_isolation(result, bool(isolation))
        return result
    finally:
        shutil.rmtree(root, ignore_errors=True)


@functools.cache
def _interpreter_is_private() -> bool:
    """Whether an unprivileged user could not reach this interpreter or its modules (e.g. under /root).

    Then a run that dropped root keeps one capability, reading and searching every directory, or it
    could not start Python at all.
    """
    paths = [Path(sys.executable).resolve(), Path(sys.base_prefix), Path(sys.prefix)]
    paths += [Path(entry) for entry in sys.path if entry]
    for path in paths:
        for directory in [path, *path.parents]:
            with contextlib.suppress(OSError):
                if directory.is_dir() and not directory.stat().st_mode & 0o001:
                    return True
    return False


def _note_missing_isolation(result: SandboxResult, reported: bool) -> None:
    """Log once per process each kind of isolation this machine's kernel refused: runs go on without it."""
    if not reported:
        return
    missing = {
        "network namespace (the program shares the host's network)": result.network_isolated,
        "PID namespace and own /proc (the program sees other processes' command lines)": result.proc_isolated,
        "mount namespace (the program can write wherever ponder's user can)": result.files_isolated,
    }
    for name, present in missing.items():
        if not present and name not in _NOTED:
            _NOTED.add(name)
            logger.warning("sandbox: the kernel refused a %s", name)


def _wait_without_reaping(process: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait until the process exits (True) or ``timeout`` passes (False), leaving it unreaped."""
    if hasattr(os, "pidfd_open"):
        descriptor = os.pidfd_open(process.pid)
        try:
            readable, _, _ = select.select([descriptor], [], [], timeout)
            return bool(readable)
        finally:
            os.close(descriptor)
    try:  # without pidfd (not Linux) the wait reaps; the group id could in principle be reused
        process.wait(timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


def _kill_group(group: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGKILL)


def _read_output(path: Path) -> str:
    with open(path, "rb") as file:
        data = file.read(OUTPUT_LIMIT + 1)
    size = path.stat().st_size
    text = data[:OUTPUT_LIMIT].decode("utf-8", errors="replace")
    if size > OUTPUT_LIMIT:
        text += f"\n[... {size - OUTPUT_LIMIT} more bytes not shown]"
    return text
