"""Red team for the code judge: responses an RL policy would try, each of which must end as a violation with the
host untouched: canary files outside the sandbox intact, a planted secret (a file and an environment variable) in
no reason, the judge's process alive, and the batch's honest sample still judged a pass.

Families: exiting with status 0 by every route; always-true comparisons; reading or patching the tests, the
harness, builtins or sys.modules; undoing in-process guards (gc, frames) and then acting on the host (shell,
subprocess, ctypes, writing, deleting, reading host files); fork, memory, CPU, disk, output and thread bombs;
network; killing the parent.
"""
import json
import os
import socket
from pathlib import Path

import pytest

from blendrl.eval.hacks import CODE_HACKS
from blendrl.eval.hacks import CODE_HONEST as HONEST
from blendrl.eval.hacks import CODE_TESTS as TESTS
from blendrl.judges import JUDGES
from blendrl.judges.sandbox import SandboxUnavailable
from blendrl.rewards import Sample

SECRET = "s3cr3t-canary-7f1e"
CANARY = Path("/tmp/blendrl_redteam_canary.txt")  # outside every sandbox: must survive
PWNED = Path("/tmp/blendrl_redteam_pwned")  # must never appear
HOSTILE = {name: code for family in CODE_HACKS.values() for name, code in family.items()}
WRONG = "\ndef add(a, b):\n    return 0\n"


def sample(code: str) -> Sample:
    return Sample([{"role": "user", "content": "Write add(a, b)."}], f"Sure:\n```python\n{code}\n```",
                  {"tests": TESTS}, "redteam.jsonl, row 1")


def test_at_least_forty_hostile_responses():
    assert len(HOSTILE) >= 40


def test_every_hostile_response_is_a_violation_and_the_host_is_untouched(tmp_path, monkeypatch):
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(SECRET)
    monkeypatch.setenv("BLENDRL_REDTEAM_SECRET", SECRET)
    CANARY.write_text("canary")
    PWNED.unlink(missing_ok=True)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.1)
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind(f"\0blendrl-redteam-{os.getpid()}")
    abstract.listen(8)
    abstract.settimeout(0.1)
    port = server.getsockname()[1]
    programs = {name: code.replace("SECRET_PATH", repr(str(secret_file))).replace("PORT", str(port))
                .replace("ABSTRACT", repr(f"\0blendrl-redteam-{os.getpid()}"))
                for name, code in HOSTILE.items()}
    judge = JUDGES["code"](wall_s=3, cpu_s=2, memory_mb=256, workers=2)
    try:
        batch = [sample(HONEST), *(sample(code) for code in programs.values()), sample(HONEST)]
        verdicts = judge.judge(batch)
        for sock in (server, abstract):
            with pytest.raises((socket.timeout, TimeoutError, BlockingIOError)):
                sock.accept()  # nothing from inside reached the host's sockets
    finally:
        server.close()
        abstract.close()
    assert verdicts[0].passed and verdicts[-1].passed, "the honest samples around the hostile ones must pass"
    passed = [name for name, v in zip(programs, verdicts[1:-1]) if v.passed]
    assert passed == [], f"hostile responses passed the code judge: {passed}"
    for name, v in zip(programs, verdicts[1:-1]):
        assert v.reason, name
        assert SECRET not in v.reason, f"{name} leaked the secret into its reason"
    assert CANARY.read_text() == "canary" and not PWNED.exists()
    assert secret_file.read_text() == SECRET
    assert not list(Path("/tmp").glob("blendrl-sandbox-*")), "sandbox folders must be removed"
    stats = verdicts.stats
    assert stats["sandbox/process"] >= 2 and stats["sandbox/network"] >= 2 and stats["sandbox/native_code"] >= 2
    assert stats["violation/timeout"] >= 3 and stats["violation/early_exit"] >= 2
    # the judge and this process carry on
    after = judge.judge([sample(HONEST)])[0]
    assert after.passed, after.reason


def test_hostile_programs_never_reach_the_run_folder_logs(tmp_path, monkeypatch):
    """The reasons are what reaches samples.jsonl: a planted secret env var must not be among them."""
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    judge = JUDGES["code"](wall_s=3)
    reasons = [v.reason for v in judge.judge([sample("import os\nraise RuntimeError(str(os.environ))" + WRONG)])]
    assert not any(SECRET in r for r in reasons)


def test_the_judge_refuses_to_start_without_isolation(monkeypatch, caplog):
    from blendrl.judges import sandbox

    sandbox._isolation_error.cache_clear()
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    try:
        with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
            JUDGES["code"]()
        judge = JUDGES["code"](unisolated=True)  # explicit, and logged on every batch
        with caplog.at_level("WARNING"):
            assert judge.judge([sample(HONEST)])[0].passed
            judge.judge([sample(HONEST)])
        assert sum("WITHOUT OS isolation" in r.message for r in caplog.records) == 2
        assert judge.judge([sample(HONEST)]).stats["unisolated"] == 1.0
    finally:
        sandbox._isolation_error.cache_clear()


def test_sandbox_layout_as_seen_from_inside():
    """What a program sees: no host /proc, /etc, /home; /dev with null and urandom; an unprivileged uid as root;
    no interface but loopback; a read-only root and a writable private /tmp."""
    from blendrl.judges.sandbox import run_python

    probe = ("import os, json, socket\n"
             "ro = []\nfor p in ('/', '/usr/lib', '/sandbox'):\n"
             "    try:\n        open(os.path.join(p, 'x'), 'w')\n    except OSError:\n        ro.append(p)\n"
             "open('/tmp/ok', 'w').write('1')\n"
             "print(json.dumps({'root': sorted(os.listdir('/')), 'dev': sorted(os.listdir('/dev')), 'uid': os.getuid(),"
             " 'ro': ro, 'ifaces': [n for _, n in socket.if_nameindex()], 'env': sorted(os.environ)}))")
    r = run_python(probe)
    import json

    seen = json.loads(r.stdout)
    assert not {"proc", "sys", "etc", "home", "var"} & set(seen["root"])
    assert seen["dev"] == ["null", "urandom"]
    assert seen["ro"] == ["/", "/usr/lib", "/sandbox"]
    assert seen["ifaces"] == ["lo"]
    assert seen["env"] == ["HOME", "LANG", "PATH", "PWD", "PYTHONHASHSEED", "TMPDIR"]
    if os.getuid() == 0:
        assert seen["uid"] >= 1_000_000


def test_stdin_stdout_tests_are_compared_outside():
    judge = JUDGES["code"](wall_s=3)
    meta = {"io_tests": [{"stdin": "2 3\n", "stdout": "5\n"}, {"stdin": "-1 1", "stdout": "0"}]}

    def io(code):
        return Sample([{"role": "user", "content": "sum"}], f"```python\n{code}\n```", meta, "io.jsonl, row 1")

    got = judge.judge([io("a, b = map(int, input().split())\nprint(a + b)"),
                       io("print(5)"),  # right for the first test only
                       io("import sys\nsys.exit(0)"),  # exits 0, prints nothing
                       io("import os\nos._exit(0)")])
    assert [v.passed for v in got] == [True, False, False, False]


def test_the_sandbox_isolates_as_a_normal_user_too(tmp_path):
    """As an unprivileged user (nobody, via setpriv) bwrap runs in a user namespace: same view, same limits.
    The sandbox modules need only the standard library and a seccomp binding (Debian's python3-seccomp for the
    system interpreter), so the system interpreter runs them from a copy."""
    import shutil
    import subprocess
    import tempfile

    python = shutil.which("python3", path="/usr/bin")
    if os.getuid() != 0 or python is None or shutil.which("setpriv") is None:
        pytest.skip("needs root (to become nobody) and /usr/bin/python3")
    here = Path(tempfile.mkdtemp(prefix="blendrl-nobody-"))
    try:
        judges = Path(__file__).resolve().parents[1] / "blendrl" / "judges"
        (here / "sbx").mkdir()
        (here / "sbx" / "__init__.py").write_text("")
        for name in ("sandbox.py", "seccomp.py", "_sandbox_harness.py"):
            shutil.copy(judges / name, here / "sbx" / name)
        (here / "probe.py").write_text(
            "import json, sys\nsys.path.insert(0, sys.argv[1])\nimport sbx.sandbox as sb\n"
            "r = sb.run_python(\"import os, json, socket\\nprint(json.dumps({'uid': os.getuid(), "
            "'root': sorted(os.listdir('/')), 'if': [n for _, n in socket.if_nameindex()]}))\")\n"
            "f = sb.run_python('import os\\nn = 0\\ntry:\\n    while True:\\n        if os.fork() == 0:\\n'\n"
            "                  '            import time\\n            time.sleep(5)\\n            os._exit(0)\\n'\n"
            "                  '        n += 1\\nexcept OSError:\\n    print(n)', sb.SandboxLimits(wall_s=3))\n"
            "print(json.dumps({'seen': json.loads(r.stdout), 'forks': int(f.stdout)}))\n")
        for p in here.rglob("*"):
            p.chmod(0o755 if p.is_dir() else 0o644)
        here.chmod(0o755)
        out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", python,
                              str(here / "probe.py"), str(here)], capture_output=True, text=True, timeout=60,
                             cwd=here)
        assert out.returncode == 0, out.stderr[-2000:]
        got = json.loads(out.stdout.strip().splitlines()[-1])
        assert got["seen"]["uid"] == 65534 and got["seen"]["if"] == ["lo"]
        assert not {"proc", "sys", "etc", "home", "root", "var", "work"} & set(got["seen"]["root"])
        assert 0 < got["forks"] < 40  # the user's own tasks + 16 + bwrap's
    finally:
        shutil.rmtree(here, ignore_errors=True)


def test_a_key_in_the_judges_keyring_is_out_of_every_programs_reach():
    """A secret key planted in this (the judge's) session keyring: no sandboxed program reads, finds, requests or
    clears it; the same programs run without the sandbox do read it (so the test can fail)."""
    from blendrl.eval.hacks import KEYRING_HACKS, plant_key, read_key, remove_key

    key = plant_key("blendrl-redteam", SECRET)
    if key is None:
        pytest.skip("keyrings are not available to this process (kernel or container filter)")
    try:
        programs = {name: code.replace("KEY_ID", str(key)).replace("DESCRIPTION", "b'blendrl-redteam'")
                    for name, code in KEYRING_HACKS.items()}
        judge = JUDGES["code"](wall_s=5, workers=2)
        verdicts = judge.judge([sample(code) for code in programs.values()])
        assert [name for name, v in zip(programs, verdicts) if v.passed] == []
        assert [name for name, v in zip(programs, verdicts) if SECRET in v.reason] == []
        assert read_key(key) == SECRET.encode(), "a sandboxed program cleared or changed the judge's key"
        bare = JUDGES["code"](wall_s=5, unisolated=True).judge([sample(programs["read the key by its id"])])[0]
        assert SECRET in bare.reason, "without the sandbox the reader must get the key, or this test proves nothing"
    finally:
        remove_key(key)


X86_64_CALLS = {"keyctl": "250, 0, -3, 0", "add_key": "248, b'user', b'x', b'y', 1, -3",
                "request_key": "249, b'user', b'x', None, 0", "ptrace": "101, 0, 0, 0, 0",
                "mount": "165, b'none', b'/tmp', b'tmpfs', 0, None", "unshare": "272, 0x10000000",
                "setns": "308, 0, 0", "bpf": "321, 0, 0, 0", "perf_event_open": "298, 0, 0, -1, -1, 0",
                "userfaultfd": "323, 0", "io_uring_setup": "425, 8, 0", "process_vm_readv": "310, 1, 0, 0, 0, 0, 0",
                "init_module": "175, 0, 0, b''", "kexec_load": "246, 0, 0, 0, 0",
                "clone with CLONE_NEWUSER": "56, 0x10000000 | 17, 0, 0, 0, 0", "clone3": "435, 0, 0"}


def test_the_seccomp_filter_denies_the_kernels_wider_surfaces():
    """Each call Docker's default profile blocks fails inside the sandbox with EPERM (clone3: ENOSYS, so the C
    library falls back to clone); a thread still starts."""
    import platform

    from blendrl.judges.sandbox import run_python

    if platform.machine() != "x86_64":
        pytest.skip("system call numbers of x86-64")
    calls = "\n".join(f"out[{name!r}] = (libc.syscall({args}), ctypes.get_errno())" for name, args in
                      X86_64_CALLS.items())
    program = ("import ctypes, json, threading\nlibc = ctypes.CDLL(None, use_errno=True)\nout = {}\n" + calls +
               "\nt = threading.Thread(target=lambda: None)\nt.start()\nt.join()\nprint(json.dumps(out))")
    r = run_python(program)
    got = json.loads(r.stdout)
    assert {name: tuple(v) for name, v in got.items() if tuple(v) != ((-1, 38) if name == "clone3" else (-1, 1))} \
        == {}


def test_builtin_code_tasks_pass_their_reference_and_fail_lookups_and_formulas_fit_to_their_examples():
    """The built-in code tasks test more than the prompt's examples (``scripts/make_cgpo_tasks.py``): each reference
    passes, and a lookup of the examples (with the first example's answer anywhere else) fails every task."""
    from importlib import resources

    judge = JUDGES["code"]()
    rows = [json.loads(line) for split in ("code", "code_eval")
            for line in resources.files("blendrl.data").joinpath(f"tasks/{split}.jsonl").read_text().splitlines()]
    refs, lookups = [], []
    for k, r in enumerate(rows):
        m, shown = r["metadata"], r["metadata"]["tests"].count("assert")
        refs.append(Sample([{"role": "user", "content": r["prompt"]}], m["reference_response"], m, f"row {k}"))
        table = {repr(c["args"]): c["expected"] for c in m["cases"][:shown]}
        code = (f"def {m['entry_point']}(*args):\n    table = {table!r}\n"
                f"    return table.get(repr(list(args)), {m['cases'][0]['expected']!r})\n")
        lookups.append(Sample([{"role": "user", "content": r["prompt"]}], f"```python\n{code}```", m, f"row {k}"))
    verdicts = judge.judge(refs + lookups)
    assert all(v.passed for v in verdicts[:len(rows)]), [v.reason for v in verdicts[:len(rows)] if not v.passed]
    assert not any(v.passed for v in verdicts[len(rows):]), [r.metadata["entry_point"] for r, v in
                                                               zip(lookups, verdicts[len(rows):]) if v.passed]
