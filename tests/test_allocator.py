"""``blendrl --allocator``: mimalloc (or jemalloc) preloaded in place of glibc's malloc."""
import os
import subprocess
import sys

import pytest

from blendrl.core import malloc
from blendrl.cli.main import main

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="LD_PRELOAD, /proc/self/maps")

PROBE = """
import os, torch
from blendrl.core import malloc
def rss_mb():
    return int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20
took = malloc.configure("keep")
x = torch.ones(32 * 2**20)  # 128 MiB, touched, then freed
del x
held = rss_mb()
malloc.trim()
print(malloc.active_allocator(), took, round(held - rss_mb()) > 100)
"""


def _probe(env: dict) -> list[str]:
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_the_mimalloc_wheel_is_found_and_preloading_it_replaces_malloc():
    path = malloc.library_path("mimalloc")
    assert path.is_file() and path.name.startswith("libmimalloc.so")
    plain = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    assert malloc.preload_env("glibc", plain) == plain
    env = malloc.preload_env("mimalloc", plain)
    assert env["LD_PRELOAD"] == str(path)
    # under mimalloc glibc's settings do not apply (configure is False) and trim hands mimalloc's free memory
    # back (its own purge is put off for 100 s here, so only trim can have released the 128 MiB)
    assert _probe({**env, "MIMALLOC_PURGE_DELAY": "100000"}) == ["mimalloc", "False", "True"]
    assert _probe(plain) == ["glibc", "True", "True"]  # keep holds the block; malloc_trim gives it back


def test_unknown_or_missing_allocators_are_named():
    with pytest.raises(ValueError, match="unknown 'tcmalloc'; choose mimalloc, jemalloc"):
        malloc.library_path("tcmalloc")
    try:  # a system library, present or not
        path = malloc.library_path("jemalloc")
    except FileNotFoundError as exc:
        assert "no libjemalloc shared library found (apt install libjemalloc2)" in str(exc)
    else:
        assert path.is_file() and path.name.startswith("libjemalloc.so")


def test_the_cli_restarts_itself_under_the_allocator(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "BLENDRL_ALLOCATOR")}
    missing = tmp_path / "missing.yaml"
    cmd = [sys.executable, "-m", "blendrl.cli.main", "--allocator", "mimalloc", "ppo", "--config", str(missing)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.splitlines()
    assert lines[0] == f"blendrl: malloc: mimalloc (LD_PRELOAD={malloc.library_path('mimalloc')})"
    assert f"{missing} does not exist" in lines[1]
    # the same through the environment variable
    out = subprocess.run(cmd[:3] + cmd[5:], env={**env, "BLENDRL_ALLOCATOR": "mimalloc"}, capture_output=True,
                         text=True, cwd=tmp_path)
    assert out.stderr.splitlines()[0].startswith("blendrl: malloc: mimalloc ")


def test_in_process_calls_cannot_switch_the_allocator(capsys, monkeypatch):
    assert main(["--allocator", "mimalloc", "ppo", "--config", "x.yaml"]) == 2
    assert "allocator mimalloc is not loaded in this process (start it with LD_PRELOAD=" in capsys.readouterr().err
    monkeypatch.setenv("_BLENDRL_PRELOADED", "mimalloc")  # a restart that did not load the library stops
    with pytest.raises(RuntimeError, match="restarted with LD_PRELOAD=.* but the library is not loaded"):
        malloc.reexec_with("mimalloc", ["ppo"])
    malloc.reexec_with("glibc", ["ppo"])  # nothing to do
    monkeypatch.setattr(malloc, "active_allocator", lambda: "mimalloc")  # a process started with LD_PRELOAD
    assert main(["ppo", "--config", "x.yaml"]) == 2  # runs (here: stops at the missing config), glibc not demanded
    assert "x.yaml does not exist" in capsys.readouterr().err
