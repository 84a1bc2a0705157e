"""Run untrusted Python (model-written code and its tests) with limits, and kill all of it afterwards.

Each run gets a fresh temporary directory as its working directory, a minimal environment, the
isolated interpreter (``python -I``), its own session and process group, and resource limits: CPU
seconds, address space, file size, process count, no core files. Where the kernel allows it (as root,
and unprivileged on most distributions) the program also gets new user, network and PID namespaces:
no network at all (not even loopback), and when the program's first process ends, the kernel kills
every process it left behind, even ones that left its process group. Without namespaces the run still
happens, with ``network_isolated=False`` in the result.

The limits are applied by a short bootstrap interpreter that then ``exec``s the program, rather than in
``subprocess``'s ``preexec_fn``: graders run in threads, and ``preexec_fn`` is not safe in a process
with threads (the child can deadlock before ``exec``).

The file system: where the kernel allows a new mount namespace (as root, and inside the new user
namespace otherwise), every mount is remounted read-only for the program except its working directory
(``files_isolated=True``): it can read what the calling user can, but write only there (and to device
files such as ``/dev/null``). Without a mount namespace the program can write whatever the calling user
can: run ponder as an unprivileged user when grading code you do not trust.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

OUTPUT_LIMIT = 64 * 1024  # bytes of stdout and of stderr kept in the result
_MIB = 1024 * 1024
_ENVIRONMENT = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}

# Runs as ``python -I -S -c _BOOTSTRAP SETTINGS`` in the new session, then becomes (or starts) the program.
_BOOTSTRAP = r"""
import ctypes, json, os, resource, signal, sys

settings = json.loads(sys.argv[1])
CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWPID = 0x10000000, 0x40000000, 0x20000000
CLONE_NEWNS, PR_SET_PDEATHSIG = 0x00020000, 1
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


flags = 0
if unshare is not None:
    for candidate in (
        CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWPID,
        CLONE_NEWNET | CLONE_NEWPID,
        CLONE_NEWUSER | CLONE_NEWNET,
        CLONE_NEWNET,
    ):
        if unshare(candidate) == 0:
            flags = candidate
            break
read_only = unshare is not None and mount is not None and unshare(CLONE_NEWNS) == 0 and make_read_only()
for name, value in settings["limits"].items():
    limit = getattr(resource, name)
    _, hard = resource.getrlimit(limit)
    soft, new_hard = value
    if hard != resource.RLIM_INFINITY:
        soft, new_hard = min(soft, hard), min(new_hard, hard)
    resource.setrlimit(limit, (soft, new_hard))
status = settings["status_fd"]
isolation = {"network": bool(flags & CLONE_NEWNET), "pid": bool(flags & CLONE_NEWPID), "files": read_only}
os.write(status, json.dumps(isolation).encode())
os.close(status)
argv = settings["argv"]
if not flags & CLONE_NEWPID:
    os.execv(argv[0], argv)
child = os.fork()
if child == 0:  # process 1 of the new PID namespace: when it ends, the kernel kills the rest
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    os.execv(argv[0], argv)
_, wait_status = os.waitpid(child, 0)
if os.WIFSIGNALED(wait_status):
    number = os.WTERMSIG(wait_status)
    signal.signal(number, signal.SIG_DFL)
    os.kill(os.getpid(), number)
    os._exit(128 + number)
os._exit(os.waitstatus_to_exitcode(wait_status))
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

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


def run_python(
    code: str,
    timeout: float = 10.0,
    memory_mb: int = 1024,
    max_processes: int = 64,
    max_file_mb: int = 16,
) -> SandboxResult:
    """Run ``code`` as a Python program in the sandbox; wall-clock ``timeout`` in seconds.

    On timeout the whole process group is killed (and the PID namespace with it). Leftover processes
    are killed after a normal exit too. Safe to call from several threads at once.
    """
    cpu_seconds = math.ceil(timeout) + 1
    root = Path(tempfile.mkdtemp(prefix="ponder-sandbox-"))
    try:
        workdir = root / "work"
        workdir.mkdir()
        program = workdir / "main.py"
        program.write_text(code, encoding="utf-8")
        status_read, status_write = os.pipe()
        settings = {
            "limits": {
                "RLIMIT_CPU": [cpu_seconds, cpu_seconds + 1],
                "RLIMIT_AS": [memory_mb * _MIB] * 2,
                "RLIMIT_FSIZE": [max_file_mb * _MIB] * 2,
                "RLIMIT_NPROC": [max_processes] * 2,
                "RLIMIT_CORE": [0, 0],
            },
            "status_fd": status_write,
            "argv": [sys.executable, "-I", program.name],
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
                    pass_fds=(status_write,),
                )
            finally:
                os.close(status_write)
            timed_out = not _wait_without_reaping(process, timeout)
            _kill_group(process.pid)  # the leader is a zombie until reaped, so its group id is still ours
            exit_code = process.wait()
            seconds = time.monotonic() - started
            isolation = json.loads(status.read() or b"{}")  # empty if the bootstrap died before writing
        return SandboxResult(
            exit_code=exit_code,
            stdout=_read_output(root / "stdout"),
            stderr=_read_output(root / "stderr"),
            timed_out=timed_out,
            seconds=seconds,
            network_isolated=isolation.get("network", False),
            pid_isolated=isolation.get("pid", False),
            files_isolated=isolation.get("files", False),
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


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
