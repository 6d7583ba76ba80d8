"""Run untrusted Python (model-written code) in a separate, limited process.

Limits (``SandboxLimits``, all configurable): wall-clock timeout (the whole process group is killed), CPU seconds,
address space, file size, open files, number of processes/threads; a fresh throw-away working directory that is
deleted afterwards; an empty environment (the parent's variables never reach the child); ``python -I -S`` (no
site-packages, no user paths). No network: when the kernel allows unprivileged user namespaces, the child runs under
``unshare -rn`` in a network namespace with no interfaces; in every case an audit hook inside the child
(``_sandbox_guard.py``) refuses sockets, process creation, ctypes, reads of /proc, /sys and /dev, and writes outside
the working directory. ``network_isolation()`` says which layer is active.

The audit hook is defence in depth inside the interpreter; the hard limits are the kernel's (rlimits, namespaces,
process-group kill). For adversarial code at scale, run judges in a container or VM as well.
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

GUARD = Path(__file__).with_name("_sandbox_guard.py")


@dataclass
class SandboxLimits:
    """Defaults: 5 s wall clock, 5 s CPU, 512 MiB address space, 16 MiB per file, 64 open files, 16 extra tasks."""

    wall_s: float = 5.0
    cpu_s: int = 5
    memory_mb: int = 512
    file_mb: int = 16
    open_files: int = 64
    processes: int = 16
    output_chars: int = 4000  # stdout/stderr kept in the result


@dataclass
class SandboxResult:
    """``limit``: the time limit that ended the program ("wall clock" or "CPU"), "" when none did."""

    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    limit: str = ""

    @property
    def timed_out(self) -> bool:
        return bool(self.limit)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def reason(self) -> str:
        if self.timed_out:
            return f"timed out after {self.seconds:.1f}s ({self.limit} limit)"
        if self.returncode == 0:
            return "passed"
        if self.returncode is not None and self.returncode < 0 and not self.stderr.strip():
            return f"killed by {_signal_name(-self.returncode)} (a resource limit)"
        last = self.stderr.strip().splitlines()[-1:] or [f"exit code {self.returncode}"]
        return last[0][:300]


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:  # e.g. a real-time signal between SIGRTMIN and SIGRTMAX
        return f"signal {number}"


@functools.lru_cache(maxsize=1)
def network_isolation() -> str:
    """``"namespace"`` when ``unshare -rn`` works here (no network interfaces in the child), else ``"audit-hook"``."""
    exe = shutil.which("unshare")
    if exe is None:
        return "audit-hook"
    try:
        ok = subprocess.run([exe, "-rn", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return "namespace" if ok else "audit-hook"


def isolation_prefix() -> list[str]:
    """The command prefix that puts the child in its own network namespace (empty when unavailable)."""
    return [shutil.which("unshare"), "-rn"] if network_isolation() == "namespace" else []


def run_python(program: str, limits: SandboxLimits | None = None) -> SandboxResult:
    """Run ``program`` (Python source) in the sandbox; exit code 0 means it ran to the end without an exception."""
    limits = limits or SandboxLimits()
    workdir = Path(tempfile.mkdtemp(prefix="blendrl-sandbox-"))
    try:
        (workdir / "solution.py").write_text(program, encoding="utf-8")
        cmd = [sys.executable, "-I", "-S", str(GUARD), json.dumps(asdict(limits)), "solution.py"]
        cmd = [*isolation_prefix(), *cmd]
        env = {"PATH": "/usr/bin:/bin", "HOME": str(workdir), "TMPDIR": str(workdir), "LANG": "C.UTF-8"}
        start = time.perf_counter()
        with open(workdir / ".stdout", "wb") as out, open(workdir / ".stderr", "wb") as err:
            proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    start_new_session=True)
            limit = ""
            try:
                proc.wait(timeout=limits.wall_s)
            except subprocess.TimeoutExpired:
                limit = "wall clock"
            _kill_group(proc.pid)  # also reaps anything the program left behind
            proc.wait()
        if not limit and proc.returncode == -signal.SIGXCPU:  # the kernel's soft RLIMIT_CPU
            limit = "CPU"
        seconds = time.perf_counter() - start
        read = lambda name: (workdir / name).read_bytes()[: limits.output_chars].decode("utf-8", "replace")  # noqa: E731
        return SandboxResult(None if limit else proc.returncode, read(".stdout"), read(".stderr"), seconds, limit)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
