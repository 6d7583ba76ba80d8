"""Run inside the sandbox process (``python -I -S _sandbox_guard.py LIMITS_JSON PROGRAM``): set resource limits,
install an audit hook, then execute PROGRAM. Standard library only; nothing from blendrl is imported here.

The audit hook (PEP 578) refuses: importing the native modules behind sockets, subprocesses and ctypes;
sockets; creating processes (fork, exec, spawn, system, subprocess), killing
processes, loading native code through ctypes, opening anything under /proc, /sys or /dev (except /dev/null,
/dev/urandom), and any write, delete, rename, chmod or link outside the sandbox directory.
"""
import json
import os
import resource
import sys


def tasks_of_this_user() -> int:
    """Threads of every process of this uid (what RLIMIT_NPROC counts; the kernel ignores it for real root)."""
    uid, n = os.getuid(), 0
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and os.stat(f"/proc/{pid}").st_uid == uid:
                n += len(os.listdir(f"/proc/{pid}/task"))
        except OSError:
            continue
    return n


def main() -> None:
    limits = json.loads(sys.argv[1])
    program = sys.argv[2]
    mb = 1024 * 1024
    # soft limit: SIGXCPU (the parent reports "timed out (CPU limit)"); hard limit one second later: SIGKILL
    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_s"], limits["cpu_s"] + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits["memory_mb"] * mb, limits["memory_mb"] * mb))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_mb"] * mb, limits["file_mb"] * mb))
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits["open_files"], limits["open_files"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    nproc = tasks_of_this_user() + limits["processes"]  # RLIMIT_NPROC counts every task of the uid
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    root = os.path.realpath(os.getcwd())
    with open(program, encoding="utf-8") as f:
        source = f.read()
    code = compile(source, "solution.py", "exec")
    allowed_dev = {"/dev/null", "/dev/urandom"}
    blocked_prefixes = ("socket.", "os.fork", "os.exec", "os.posix_spawn", "os.spawn", "ctypes.")
    blocked_modules = {"_posixsubprocess", "_ctypes", "_socket", "_multiprocessing", "_ssl", "pty", "fcntl"}
    blocked = {"os.system", "os.forkpty", "subprocess.Popen", "os.kill", "os.killpg", "os.setsid", "pty.spawn",
               "os.startfile", "resource.setrlimit", "resource.prlimit", "sys.remote_exec"}
    path_events = {"os.remove", "os.rename", "os.rmdir", "os.mkdir", "shutil.rmtree", "os.chmod", "os.chown",
                   "os.link", "os.symlink", "os.truncate", "os.utime", "shutil.copyfile", "shutil.move"}

    def inside(path) -> bool:
        full = os.path.realpath(os.path.join(root, os.fsdecode(path)))
        return full == root or full.startswith(root + os.sep)

    def hook(event, args):
        if event == "import" and args[0].split(".")[0] in blocked_modules:
            raise PermissionError(f"sandbox: importing {args[0]} is not allowed")
        if event in blocked or event.startswith(blocked_prefixes):
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "open":
            path, mode, flags = args
            if isinstance(path, int) or path is None:
                return
            full = os.path.realpath(os.path.join(root, os.fsdecode(path)))
            if full.startswith(("/proc", "/sys", "/dev")) and full not in allowed_dev:
                raise PermissionError(f"sandbox: reading {full} is not allowed")
            writing = (mode and any(c in str(mode) for c in "wax+")) or (flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
            if writing and not inside(path) and full not in allowed_dev:
                raise PermissionError(f"sandbox: writing {full} is not allowed")
        elif event in path_events:
            for p in args:
                if isinstance(p, (str, bytes, os.PathLike)) and not inside(p):
                    raise PermissionError(f"sandbox: {event} outside the sandbox is not allowed")

    sys.addaudithook(hook)
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    exec(code, namespace)


if __name__ == "__main__":
    main()
