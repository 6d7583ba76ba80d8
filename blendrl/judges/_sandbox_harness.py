"""Runs inside the sandbox (``python -I -S /sandbox/harness.py /sandbox/job.json``); standard library only.

It loads the model's solution, calls the named functions on the job's inputs and writes, as the only thing on the
original stdout, one JSON document: each call's return value as plain tagged data (or the exception it raised), and
telemetry counts of what the program tried (process creation, network, native code, files outside /tmp, signals,
introspection). The expected values are never here: the trusted parent compares. Nothing written here is trusted
either: a program can forge this document, but without the expected values a forged one is just another answer,
and the telemetry is for watching, not for the boundary (bwrap is the boundary).
"""
import copy
import json
import os
import sys

FAMILIES = (
    ("process", ("os.system", "os.exec", "os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "subprocess.Popen",
                 "pty.spawn")),
    ("network", ("socket.",)),
    ("native_code", ("ctypes.",)),
    ("signals", ("os.kill", "os.killpg", "signal.pthread_kill")),
    ("introspection", ("gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys._getframe",
                       "sys._current_frames", "sys.settrace", "sys.setprofile", "sys.addaudithook")),
    ("threads", ("_thread.start_new_thread",)),
)
PATH_EVENTS = ("os.remove", "os.rename", "os.rmdir", "os.mkdir", "shutil.rmtree", "os.chmod", "os.chown", "os.link",
               "os.symlink", "os.truncate", "os.utime")


def encode(value, depth=0):
    """Plain data only, by exact type (a subclass of int or a class with its own ``__eq__`` is not plain data)."""
    if depth > 200:
        raise ValueError("nested deeper than 200 levels")
    t = type(value)
    if value is None or t in (bool, int, float, str):
        return value
    if t is list:
        return [encode(v, depth + 1) for v in value]
    if t in (tuple, set, frozenset):
        return {"t": t.__name__, "v": [encode(v, depth + 1) for v in value]}
    if t is dict:
        return {"t": "dict", "v": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]}
    if t is bytes:
        return {"t": "bytes", "v": value.hex()}
    if t is complex:
        return {"t": "complex", "v": [value.real, value.imag]}
    raise TypeError(f"returned a {t.__name__}, not plain data")


def decode(data):
    if isinstance(data, list):
        return [decode(v) for v in data]
    if isinstance(data, dict):
        tag, v = data["t"], data["v"]
        if tag == "tuple":
            return tuple(decode(x) for x in v)
        if tag in ("set", "frozenset"):
            return (set if tag == "set" else frozenset)(decode(x) for x in v)
        if tag == "dict":
            return {decode(k): decode(x) for k, x in v}
        if tag == "bytes":
            return bytes.fromhex(v)
        if tag == "complex":
            return complex(*v)
        raise ValueError(f"unknown tag {tag!r}")
    return data


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        job = json.load(f)
    with open(os.path.join(os.path.dirname(sys.argv[1]), job["solution"]), encoding="utf-8") as f:
        source = f.read()
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # the program's own prints go to stderr; the original stdout carries the results only
    sys.stdout = sys.stderr
    events = {}

    def hook(event, args):
        for family, prefixes in FAMILIES:
            if event.startswith(prefixes):
                events[family] = events.get(family, 0) + 1
                return
        if event == "open" and isinstance(args[0], str) and not args[0].startswith(("/tmp", sys.prefix)):
            events["files_outside"] = events.get("files_outside", 0) + 1
        elif event in PATH_EVENTS and any(isinstance(a, str) and not a.startswith("/tmp") for a in args):
            events["files_outside"] = events.get("files_outside", 0) + 1

    sys.addaudithook(hook)
    namespace = {"__name__": "solution", "__builtins__": __builtins__}
    report = {"results": [], "events": events, "load_error": None}
    try:
        exec(compile(source, "solution.py", "exec"), namespace)
    except BaseException as exc:  # noqa: BLE001 - SystemExit too: leaving early is an error, never a pass
        report["load_error"] = f"{type(exc).__name__}: {exc}"[:300]
    if report["load_error"] is None:
        for call in job["calls"]:
            fn = namespace.get(call["function"])
            if not callable(fn):
                report["results"].append({"error": f"the solution defines no function {call['function']!r}"})
                continue
            try:
                args, kwargs = copy.deepcopy(decode(call["args"])), copy.deepcopy(decode(call.get("kwargs") or {}))
                report["results"].append({"ok": encode(fn(*args, **kwargs))})
            except BaseException as exc:  # noqa: BLE001 - an exit inside the function is that case's error
                report["results"].append({"error": f"{type(exc).__name__}: {exc}"[:300]})
    out.write(json.dumps(report))
    out.flush()
    os._exit(0)  # no atexit handlers or lingering threads of the program after the report


if __name__ == "__main__":
    main()
