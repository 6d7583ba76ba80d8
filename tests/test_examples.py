"""Every shipped example config loads and validates."""
from pathlib import Path

import pytest

from blendrl.config import PPORunConfig, load_config

from blendrl.config.rm_schema import RMRunConfig

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml"))
RM_EXAMPLES = [p for p in EXAMPLES if p.name.startswith("rm_")]
CGPO_EXAMPLES = [p for p in EXAMPLES if p.name.startswith("cgpo_")]
LAB_EXAMPLES = [p for p in EXAMPLES if p.name.startswith("lab_")]
PPO_EXAMPLES = [p for p in EXAMPLES if p not in RM_EXAMPLES + CGPO_EXAMPLES + LAB_EXAMPLES]


@pytest.mark.parametrize("path", PPO_EXAMPLES, ids=[p.name for p in PPO_EXAMPLES])
def test_example_config_is_valid(path):
    cfg = load_config(PPORunConfig, path)
    assert cfg.train.iterations >= 1


@pytest.mark.parametrize("path", RM_EXAMPLES, ids=[p.name for p in RM_EXAMPLES])
def test_reward_model_example_config_is_valid(path):
    cfg = load_config(RMRunConfig, path)
    assert cfg.strength.models >= 2


@pytest.mark.parametrize("path", CGPO_EXAMPLES, ids=[p.name for p in CGPO_EXAMPLES])
def test_cgpo_example_config_is_valid(path):
    from blendrl.config.cgpo_schema import CGPORunConfig

    cfg = load_config(CGPORunConfig, path)
    assert len(cfg.tasks) >= 3 and len({t.optimizer.name for t in cfg.tasks}) >= 2


@pytest.mark.parametrize("path", LAB_EXAMPLES, ids=[p.name for p in LAB_EXAMPLES])
def test_lab_example_config_is_valid(path):
    from blendrl.config.lab_schema import OverOptLabConfig

    cfg = load_config(OverOptLabConfig, path)
    assert cfg.proxy.members >= 2 and {r.objective for r in cfg.ppo.runs} >= {"single", "wco", "uwo"}
