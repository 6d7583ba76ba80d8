"""The sandbox's system-call filter, in the spirit of Docker's default seccomp profile, built with libseccomp.

Namespaces hide the host's files, processes and network; they do not hide the *kernel's* shared objects. A
program under bubblewrap can still reach the session keyring it inherits (read a key the judge holds, or clear
it), trace or read other processes' memory, create new namespaces, load BPF programs or kernel modules, and open
the kernel's wider attack surfaces (io_uring, userfaultfd, perf events). The filter denies these calls with EPERM
(``clone3`` with ENOSYS, so the C library falls back to ``clone``, whose namespace flags are denied too); every
other call is allowed. bubblewrap installs it (``--seccomp FD``) right before it executes the program, so every
process the program starts inherits it and none can remove it.

The filter is compiled once per process to a BPF program by libseccomp, through ``pyseccomp`` (a maintained ctypes
binding, API-compatible with libseccomp's own Python module, which is used instead when it is installed). The
argument rules on ``clone`` assume the x86-64/arm64 argument order (flags first).
"""
from __future__ import annotations

import errno
import functools
import io

# Docker's default profile blocks these (or allows them only with capabilities the sandbox never has)
DENIED = (
    "keyctl", "add_key", "request_key",  # the kernel's keyrings: read, plant or clear keys
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",  # other processes' memory
    "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount",
    "fspick", "mount_setattr", "unshare", "setns",  # filesystems and namespaces
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot", "swapon", "swapoff",
    "acct", "quotactl", "syslog", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "open_by_handle_at", "name_to_handle_at", "lookup_dcookie", "personality", "uselib", "ustat", "sysfs",
    "iopl", "ioperm", "vhangup", "nfsservctl", "fanotify_init", "mbind", "move_pages", "set_mempolicy",
)
# clone flags that create namespaces (CLONE_NEWTIME, NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET)
NAMESPACE_FLAGS = (0x80, 0x20000, 0x2000000, 0x4000000, 0x8000000, 0x10000000, 0x20000000, 0x40000000)


def _library():
    try:
        import seccomp  # libseccomp's own binding (Debian's python3-seccomp), when this interpreter has it
    except ImportError:
        import pyseccomp as seccomp
    return seccomp


@functools.lru_cache(maxsize=1)
def filter_program() -> bytes:
    """The compiled BPF program (bytes) that bubblewrap loads with ``--seccomp``."""
    sc = _library()
    f = sc.SyscallFilter(defaction=sc.ALLOW)
    for name in DENIED:
        try:
            f.add_rule(sc.ERRNO(errno.EPERM), name)
        except (ValueError, RuntimeError, OSError):  # not a system call on this architecture
            continue
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    for flag in NAMESPACE_FLAGS:
        f.add_rule(sc.ERRNO(errno.EPERM), "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    buf = io.BytesIO()
    try:
        f.export_bpf(buf)
        return buf.getvalue()
    except (TypeError, AttributeError, io.UnsupportedOperation):  # the binding wants a real file descriptor
        import tempfile

        with tempfile.TemporaryFile() as tmp:
            f.export_bpf(tmp)
            tmp.seek(0)
            return tmp.read()


def seccomp_error() -> str | None:
    """None when the filter can be built here; else why not (no libseccomp, no binding)."""
    try:
        filter_program()
    except Exception as exc:  # noqa: BLE001 - any failure means no filter, and the judge refuses to run
        return f"cannot build the seccomp filter ({type(exc).__name__}: {exc})"
    return None
