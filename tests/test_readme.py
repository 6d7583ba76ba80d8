"""The README's quick start and Python example run (on the tiny model: the config they name is copied with the
model swapped; `BLENDRL_SLOW=1` runs the quick start on SmolLM2 as written, fewer iterations)."""
import re
import shlex
from pathlib import Path

import pytest
import yaml

from blendrl.cli.main import main as cli

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _block(lang: str, after: str) -> str:
    start = README.index(after)
    match = re.compile(rf"```{lang}\n(.*?)```", re.S).search(README, start)
    return match.group(1)


def _tiny_copy(tiny_dir, tmp_path) -> Path:
    data = yaml.safe_load((ROOT / "examples" / "ppo_rule.yaml").read_text())
    data["model"]["name"] = str(tiny_dir)
    data["generation"]["max_new_tokens"] = 8
    data["logging"]["eval_prompts"] = 4
    path = tmp_path / "ppo_rule.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_readme_is_a_front_door():
    assert len(README.splitlines()) <= 250
    for link in re.findall(r"\]\((docs/[^)#]+)", README):
        assert (ROOT / link).is_file(), link


def test_quick_start_command_runs(tiny_dir, tmp_path, capsys):
    cmd = shlex.split(_block("bash", "## Quick start").strip())
    assert cmd[:2] == [".venv/bin/blendrl", "ppo"]
    args = [a.replace("examples/ppo_rule.yaml", str(_tiny_copy(tiny_dir, tmp_path)))
            .replace("runs/quickstart", str(tmp_path / "quickstart")) for a in cmd[1:]]
    assert cli(args + ["--set", "train.iterations=2", "--set", "logging.progress=false"]) == 0
    out = capsys.readouterr().out
    assert "held-out reward:" in out and (tmp_path / "quickstart" / "final" / "config.json").is_file()


def test_python_example_runs(tiny_dir, tmp_path, capsys, monkeypatch):
    code = _block("python", "## In Python")
    code = code.replace("examples/ppo_rule.yaml", str(_tiny_copy(tiny_dir, tmp_path)))
    code = code.replace("runs/example", str(tmp_path / "example"))
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out.split()
    assert len(printed) == 2 and all(float(x) <= 0 for x in printed)  # −words/20 per response, two iterations


@pytest.mark.slow
def test_quick_start_on_smollm2(tmp_path, capsys):
    cmd = shlex.split(_block("bash", "## Quick start").strip())
    args = [a.replace("runs/quickstart", str(tmp_path / "q")) for a in cmd[1:]]
    assert cli(args + ["--set", "train.iterations=1", "--set", "logging.progress=false"]) == 0
    assert "held-out reward:" in capsys.readouterr().out
