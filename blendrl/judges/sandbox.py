"""Run untrusted Python (model-written code) under OS isolation: bubblewrap namespaces, an unprivileged uid, rlimits.

The boundary is the kernel's, never the interpreter's. Each program runs through ``bwrap`` (Debian package
``bubblewrap``; ``scripts/setup_env.sh`` installs it) with:

- new mount, PID, network, IPC and UTS namespaces (``--unshare-pid --unshare-net ...``): no network interface but a
  private loopback, no host process visible, so the judge cannot be signalled or inspected;
- a read-only root holding only the interpreter, its standard library and the shared libraries under ``/usr/lib``;
  no host ``/proc``, ``/sys``, ``/etc`` or home; ``/dev`` has ``null`` and ``urandom`` only;
- ``/sandbox`` (read-only): the harness and the job; ``/tmp`` (the working directory): a private, size-limited tmpfs;
- a new session (``--new-session``: no terminal injection), ``--die-with-parent``, an empty environment;
- a seccomp filter in the spirit of Docker's default profile (:mod:`~blendrl.judges.seccomp`: no keyrings, ptrace,
  mounts, new namespaces, BPF, io_uring, userfaultfd, perf events, module loading, ...), and a fresh, empty session
  keyring (keyutils' ``keyctl session -``), so no key the judge process holds is in reach;
- rlimits set before ``exec`` (CPU seconds, address space, file size, open files, processes, no core dumps);
- as root (CI runs as root), the program itself runs under a fresh unprivileged uid (``setpriv --reuid``, no new
  privileges, no capabilities), so ``RLIMIT_NPROC`` binds (the kernel exempts root from it) and every file the
  sandbox can see is read-only to it; as a normal user, bwrap puts it in a user namespace instead.

Where bwrap cannot run, :func:`require_isolation` raises :class:`SandboxUnavailable` with how to fix it; judges
refuse to start rather than run untrusted code bare. ``unisolated=True`` (the code judge's ``unisolated: true``)
runs with rlimits only, for a machine the user owns outright, and the judge logs that on every batch.
"""
from __future__ import annotations

import functools
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .seccomp import filter_program, seccomp_error

HARNESS = Path(__file__).with_name("_sandbox_harness.py")
INSTALL_HINT = ("install bubblewrap and keyutils (Debian/Ubuntu: apt-get install bubblewrap keyutils; "
                "scripts/setup_env.sh does it) and the seccomp binding (pip install pyseccomp; libseccomp2 is part "
                "of every Debian/Ubuntu system), or set the judge's option unisolated: true to run model-written code "
                "without OS isolation")


class SandboxUnavailable(RuntimeError):
    """No OS isolation can be set up on this machine; untrusted code is not run."""


@dataclass
class SandboxLimits:
    """Defaults: 5 s wall clock, 5 s CPU, 512 MiB address space, 16 MiB per file and 64 MiB of /tmp, 64 open files,
    16 processes/threads, 4000 characters of stderr kept, 16 MiB of stdout read back."""

    wall_s: float = 5.0
    cpu_s: int = 5
    memory_mb: int = 512
    file_mb: int = 16
    tmp_mb: int = 64
    open_files: int = 64
    processes: int = 16
    output_chars: int = 4000  # stderr kept in the result (for reasons and debugging)
    stdout_mb: int = 16  # stdout read back (the harness's results, or a stdin/stdout program's output)


@dataclass
class SandboxResult:
    """``limit``: the time limit that ended the program ("wall clock" or "CPU"), "" when none did."""

    returncode: int | None
    stdout: bytes
    stderr: str
    seconds: float
    limit: str = ""

    @property
    def timed_out(self) -> bool:
        return bool(self.limit)

    def reason(self) -> str:
        """Why the program did not end normally, for a violation's reason."""
        if self.timed_out:
            return f"timed out after {self.seconds:.1f}s ({self.limit} limit)"
        if self.returncode is not None and self.returncode < 0:
            return f"killed by {_signal_name(-self.returncode)} (a resource limit)"
        last = self.stderr.strip().splitlines()[-1:] or [f"exit code {self.returncode}"]
        return last[0][:300]


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:  # e.g. a real-time signal between SIGRTMIN and SIGRTMAX
        return f"signal {number}"


def interpreter() -> str:
    """The real (non-venv) interpreter the sandbox runs: only its standard library is mounted."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def _ro_paths() -> list[str]:
    """Host paths mounted read-only: shared libraries, the interpreter, its stdlib and libpython."""
    paths = {"/usr/lib", interpreter(), os.path.dirname(os.__file__)}  # the stdlib (lib-dynload is inside it)
    if os.path.isdir("/usr/lib64") and not os.path.islink("/usr/lib64"):
        paths.add("/usr/lib64")
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir and os.path.isdir(libdir) and any(Path(libdir).glob("libpython*")):
        paths.update(str(p) for p in Path(libdir).glob("libpython*"))
    if os.getuid() == 0:
        paths.add(shutil.which("setpriv") or "/usr/bin/setpriv")
    return sorted(p for p in paths if os.path.exists(p))


_UIDS = itertools.count(0)


def _sandbox_uid() -> int:
    """A uid no account uses, different for each concurrent run, so RLIMIT_NPROC counts this run's tasks only."""
    return 2_000_000 + (os.getpid() % 1000) * 1000 + next(_UIDS) % 1000


def bwrap_command(argv: list[str], limits: SandboxLimits, sandbox_dir: Path, seccomp_fd: int) -> list[str]:
    """The command line that runs ``argv`` (already naming the interpreter) inside the sandbox: a new session
    keyring (``keyctl session -``), then bwrap with the seccomp filter read from ``seccomp_fd``."""
    bwrap, keyctl = shutil.which("bwrap"), shutil.which("keyctl")
    if bwrap is None or keyctl is None:
        missing = "'bwrap'" if bwrap is None else "'keyctl' (keyutils)"
        raise SandboxUnavailable(f"the code sandbox needs {missing} on PATH: {INSTALL_HINT}")
    cmd = [keyctl, "session", "-", bwrap, "--seccomp", str(seccomp_fd), "--unshare-pid", "--unshare-net",
           "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
           "--die-with-parent", "--new-session", "--clearenv", "--hostname", "sandbox"]
    root = os.getuid() == 0
    if not root:
        cmd.append("--unshare-user")
    paths = _ro_paths()
    parents = sorted({str(a) for p in paths for a in Path(p).parents if str(a) != "/"} - set(paths),
                     key=lambda a: a.count("/"))
    for parent in parents:  # bwrap would create them 0700: the unprivileged uid could not reach the interpreter
        cmd += ["--perms", "0755", "--dir", parent]
    for path in paths:
        cmd += ["--ro-bind", path, path]
    for link, target in (("/lib", "usr/lib"), ("/lib64", "usr/lib64"), ("/bin", "usr/bin")):
        if os.path.islink(link):
            cmd += ["--symlink", target, link]
    cmd += ["--perms", "0755", "--dir", "/dev",
            "--dev-bind", "/dev/null", "/dev/null", "--dev-bind", "/dev/urandom", "/dev/urandom",
            "--ro-bind", str(sandbox_dir), "/sandbox",
            "--size", str(limits.tmp_mb * 1024 * 1024), "--perms", "1777", "--tmpfs", "/tmp",
            "--remount-ro", "/", "--chdir", "/tmp",
            "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/tmp", "--setenv", "TMPDIR", "/tmp",
            "--setenv", "LANG", "C.UTF-8", "--setenv", "PYTHONHASHSEED", "0"]
    if root:  # drop to an unprivileged uid inside: RLIMIT_NPROC binds, no capability survives
        uid = _sandbox_uid()
        cmd += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--",
                shutil.which("setpriv") or "/usr/bin/setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                "--no-new-privs", "--inh-caps=-all", "--"]
    else:
        cmd.append("--")
    return cmd + argv


def prlimit_prefix(limits: SandboxLimits, nproc: int) -> list[str]:
    """util-linux ``prlimit`` setting the rlimits and exec-ing the rest of the command, which inherits them (no
    ``preexec_fn``: the judge forks from a thread pool, where running Python between fork and exec can deadlock).
    CPU: the soft limit sends SIGXCPU (reported as "timed out (CPU limit)"), the hard one SIGKILL a second later."""
    mb = 1024 * 1024
    return [shutil.which("prlimit") or "/usr/bin/prlimit", f"--cpu={limits.cpu_s}:{limits.cpu_s + 1}",
            f"--as={limits.memory_mb * mb}", f"--fsize={limits.file_mb * mb}", f"--nofile={limits.open_files}",
            "--core=0", f"--nproc={nproc}", "--"]


def _tasks_of(uid: int) -> int:
    """Threads of every process of ``uid`` (what RLIMIT_NPROC counts), read from the host's /proc by the parent."""
    n = 0
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and os.stat(f"/proc/{pid}").st_uid == uid:
                n += len(os.listdir(f"/proc/{pid}/task"))
        except OSError:
            continue
    return n


def run_sandboxed(files: dict[str, str], argv: list[str], limits: SandboxLimits | None = None,
                  stdin: str | None = None, unisolated: bool = False) -> SandboxResult:
    """Run ``[python, -I, -S, *argv]`` with ``files`` (name → text) read-only under ``/sandbox`` and ``stdin``.

    ``argv`` names files as ``/sandbox/NAME``. stdout comes back as bytes (up to ``stdout_mb``), stderr as text (up
    to ``output_chars``). The whole process tree is killed at ``wall_s``.
    """
    if not unisolated:
        require_isolation()
    return _run(files, argv, limits or SandboxLimits(), stdin, unisolated)


def _run(files: dict[str, str], argv: list[str], limits: SandboxLimits, stdin: str | None,
         unisolated: bool) -> SandboxResult:
    host = Path(tempfile.mkdtemp(prefix="blendrl-sandbox-"))
    try:
        job = host / "job"
        job.mkdir()
        for name, text in files.items():
            (job / name).write_text(text, encoding="utf-8")
            (job / name).chmod(0o644)
        job.chmod(0o755)
        (host / "stdin").write_text(stdin or "", encoding="utf-8")
        (host / "seccomp.bpf").write_bytes(b"" if unisolated else filter_program())
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
        with open(host / "stdin", "rb") as inp, open(host / "stdout", "wb") as out, \
                open(host / "stderr", "wb") as err, open(host / "seccomp.bpf", "rb") as bpf:
            if unisolated:
                argv = [a.replace("/sandbox/", f"{job}/") for a in argv]
                cmd, cwd, nproc = [interpreter(), "-I", "-S", *argv], job, _tasks_of(os.getuid()) + limits.processes
            else:
                cmd, cwd = bwrap_command([interpreter(), "-I", "-S", *argv], limits, job, bpf.fileno()), host
                # as root the program runs under a fresh uid (bwrap's own tasks run as root, exempt); else it shares
                # the user's count, so the user's current tasks are added
                nproc = limits.processes if os.getuid() == 0 else _tasks_of(os.getuid()) + limits.processes + 4
            start = time.perf_counter()
            proc = subprocess.Popen([*prlimit_prefix(limits, nproc), *cmd], cwd=cwd, env=env, stdin=inp, stdout=out,
                                    stderr=err, start_new_session=True, pass_fds=() if unisolated else (bpf.fileno(),))
            limit = ""
            try:
                proc.wait(timeout=limits.wall_s)
            except subprocess.TimeoutExpired:
                limit = "wall clock"
            _kill_group(proc.pid)  # bwrap dies; its PID namespace (and everything in it) goes with it
            proc.wait()
        if not limit and proc.returncode in (-signal.SIGXCPU, 128 + signal.SIGXCPU):  # the soft RLIMIT_CPU
            limit = "CPU"
        seconds = time.perf_counter() - start
        with open(host / "stdout", "rb") as f:
            stdout = f.read(limits.stdout_mb * 1024 * 1024)
        with open(host / "stderr", "rb") as f:
            stderr = f.read(limits.output_chars + 64).decode("utf-8", "replace")
        stderr = re.sub(r"\AJoined session keyring: \d+\n", "", stderr)[:limits.output_chars]  # keyctl's own line
        code = proc.returncode
        if code is not None and code > 128 and not unisolated:  # bwrap reports a signalled child as 128 + signal
            code = -(code - 128)
        return SandboxResult(None if limit else code, stdout, stderr, seconds, limit)
    finally:
        shutil.rmtree(host, ignore_errors=True)


def run_python(program: str, limits: SandboxLimits | None = None, stdin: str | None = None,
               unisolated: bool = False) -> SandboxResult:
    """Run one Python program (source text) in the sandbox; it reads ``stdin`` and its stdout comes back."""
    return run_sandboxed({"main.py": program}, ["/sandbox/main.py"], limits, stdin, unisolated)


@functools.lru_cache(maxsize=1)
def _isolation_error() -> str | None:
    """None when a bwrap sandbox starts here and is really isolated; else why not."""
    for tool in ("bwrap", "keyctl"):
        if shutil.which(tool) is None:
            return f"'{tool}' is not on PATH"
    if error := seccomp_error():
        return error
    probe = ("import ctypes, os, socket\n"
             "assert not os.path.exists('/proc/1') and not os.path.exists('/etc/passwd'), 'host files visible'\n"
             "assert os.getuid() != 0, 'runs as root'\n"
             "libc = ctypes.CDLL(None, use_errno=True)\n"
             "assert libc.syscall(250, 0, -3, 0) == -1 and ctypes.get_errno() == 1, 'keyctl is not filtered'\n"
             "try:\n    socket.create_connection(('1.1.1.1', 53), timeout=1)\nexcept OSError:\n    print('ok')\n")
    try:
        r = _run({"main.py": probe}, ["/sandbox/main.py"], SandboxLimits(wall_s=20, cpu_s=10), None, False)
    except (OSError, SandboxUnavailable) as exc:
        return str(exc)
    if r.returncode != 0 or r.stdout.strip() != b"ok":
        return f"bwrap failed here: {r.reason()}"
    return None


def require_isolation() -> None:
    """Raise :class:`SandboxUnavailable` (with how to fix it) unless the bwrap sandbox works on this machine."""
    error = _isolation_error()
    if error:
        raise SandboxUnavailable(f"the code sandbox cannot isolate model-written code here ({error}); {INSTALL_HINT}")


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
