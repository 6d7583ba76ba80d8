"""Every shipped example config loads and validates."""
from pathlib import Path

import pytest

from blendrl.config import PPORunConfig, load_config

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_config_is_valid(path):
    cfg = load_config(PPORunConfig, path)
    assert cfg.train.iterations >= 1
