"""perf.freed_memory: glibc keeps freed blocks for reuse (``keep``, the default) or hands them back (``return``)."""
import subprocess
import sys

import pytest

from blendrl.config import ConfigError, PPORunConfig, from_dict

PROBE = """
import os, torch
from blendrl.core import malloc
took = malloc.configure({mode!r})
def rss_mb():
    return int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20
x = torch.ones(32 * 2**20)  # 128 MiB, touched
held = rss_mb()
del x
print(took, round(held - rss_mb()))
"""


def _released_mb(mode: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", PROBE.format(mode=mode)], capture_output=True, text=True, check=True)
    took, released = out.stdout.split()
    return took, int(released)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc")
def test_keep_holds_freed_memory_and_return_gives_it_back():
    took, released = _released_mb("keep")
    assert took == "True" and released < 8  # the 128 MiB stay in the process, ready for the next tensor
    took, released = _released_mb("return")
    assert took == "True" and released > 100  # handed back to the OS at once
    assert _released_mb("glibc")[0] == "False"


def test_freed_memory_is_a_perf_switch_and_keep_is_the_default():
    assert from_dict(PPORunConfig, {}).perf.freed_memory == "keep"
    assert from_dict(PPORunConfig, {"perf": {"freed_memory": "return"}}).perf.freed_memory == "return"
    with pytest.raises(ConfigError, match=r"unknown config key 'train.freed_memory'"):
        from_dict(PPORunConfig, {"train": {"freed_memory": "keep"}})
