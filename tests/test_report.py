"""``blendrl report``: the HTML page of a tiny CGPO run, rendered in headless Chromium, shows each task's curves and
the samples with their verdicts (flagged ones first, the filter working), and a model's text cannot run as code in
it."""
import json
import re
import shutil
import subprocess
import sys

import pytest

from tests.tiny import tiny_cgpo_config

HOSTILE = "<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\"> Answer: yes"


def _chromium():
    path = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if path is None:
        pytest.skip("no Chromium (scripts/setup_env.sh installs the Debian package as root)")
    return path


def _dom(chromium, page):
    """The page's DOM after its script ran, as headless Chromium serialises it."""
    out = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_the_report_of_a_cgpo_run_shows_its_curves_and_samples_in_headless_chromium(tiny_dir, tmp_path):
    chromium = _chromium()
    from blendrl.training.cgpo.run import run_cgpo

    cfg = tiny_cgpo_config(tiny_dir, tmp_path / "run")
    cfg.train.iterations, cfg.logging.save_every = 3, 1
    run_cgpo(cfg)
    samples = tmp_path / "run" / "samples.jsonl"
    with samples.open("a") as fh:  # a sample that games the judges with markup of its own
        fh.write(json.dumps({"iteration": 3, "tag": "train", "task": "crpg", "prompt": "q", "response": HOSTILE,
                             "reward": 1.0, "passed": True, "violations": [], "finished": True}) + "\n")
    n = len(samples.read_text().splitlines())
    out = subprocess.run([sys.executable, "-m", "blendrl.cli.main", "report", str(tmp_path / "run")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    page = tmp_path / "run" / "report.html"
    text = page.read_text()
    external = r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|url\(\s*["']?(?:https?:)?//"""
    assert not re.search(external, text)  # nothing is fetched from outside
    assert 'http-equiv="Content-Security-Policy" content="default-src \'none\'' in text
    dom = _dom(chromium, page)
    for task in ("crpg", "crraft", "codpo"):
        assert f"<h2>{task}</h2>" in dom
    assert dom.count("<svg") >= 3 * 4  # reward, judges, hack signals, KL and length for each task
    assert "reward/mean" in dom and "pass_rate" in dom and "hack/injection" in dom
    assert f"{n} shown" in dom  # the filter script ran over every sample row
    assert dom.count('<tr class=') == n
    first = dom.index('<tr class=')
    assert 'class="flagged"' in dom[first: first + 40] and "injection" in dom[first: dom.index("</tr>", first)]
    assert "<title>blendrl report</title>" in dom and "pwned" not in dom.split("<body>")[0]  # nothing ran
    assert "&lt;script&gt;document.title" in dom and "<img src=\"x\"" not in dom
    assert "no_no: contains forbidden" in dom  # a judge's reason, on its row
