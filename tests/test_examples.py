"""Every shipped example config loads and validates."""
from pathlib import Path

import pytest

from blendrl.config import PPORunConfig, load_config

from blendrl.config.rm_schema import RMRunConfig

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml"))
RM_EXAMPLES = [p for p in EXAMPLES if p.name.startswith("rm_")]
CGPO_EXAMPLES = [p for p in EXAMPLES if p.name.startswith("cgpo_")]
LAB_EXAMPLES = [p for p in EXAMPLES if p.name.startswith("lab_")]
DPO_EXAMPLES = [p for p in EXAMPLES if p.name.startswith("dpo")]  # run by tests/test_dpo.py
PPO_EXAMPLES = [p for p in EXAMPLES if p not in RM_EXAMPLES + CGPO_EXAMPLES + LAB_EXAMPLES + DPO_EXAMPLES]


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


# ---------------------------------------------------------------------- every example runs (tiny model, 1 iteration)
def small(tiny_dir, out) -> list[str]:
    return [f"model.name={tiny_dir}", "generation.max_new_tokens=6", f"logging.output_dir={out}",
            "logging.tensorboard=false", "logging.progress=false", "logging.eval_prompts=2", "train.iterations=1"]


@pytest.mark.parametrize("path", PPO_EXAMPLES, ids=[p.name for p in PPO_EXAMPLES])
def test_ppo_example_runs_on_the_tiny_model(path, tiny_dir, tmp_path):
    from blendrl.training.run import run

    k = load_config(PPORunConfig, path).filter.keep + 1 if "filter:" in path.read_text() else 2
    cfg = load_config(PPORunConfig, path, small(tiny_dir, tmp_path) + [
        "train.prompts_per_iteration=2", f"train.samples_per_prompt={k}", "train.micro_batch_size=4"])
    run(cfg)
    assert (tmp_path / "final" / "config.json").is_file() or (tmp_path / "final" / "adapter_config.json").is_file()
    assert any('"iteration": 1' in line for line in (tmp_path / "metrics.jsonl").read_text().splitlines())


@pytest.mark.parametrize("path", CGPO_EXAMPLES, ids=[p.name for p in CGPO_EXAMPLES])
def test_cgpo_example_runs_on_the_tiny_model(path, tiny_dir, tmp_path):
    """The LLM-judge rewards use the tiny model too (its vocabulary spells yes/no in lower case)."""
    from blendrl.config.cgpo_schema import CGPORunConfig
    from blendrl.training.cgpo.run import run_cgpo

    names = [t.name for t in load_config(CGPORunConfig, path).tasks]
    judge = f"{{model: '{tiny_dir}', pass_token: 'yes', fail_token: 'no'}}"
    sets = small(tiny_dir, tmp_path) + [f"tasks.{n}.rewards.0.options={judge}" for n in names] + [
        f"tasks.{n}.prompts_per_iteration=1" for n in names]
    result = run_cgpo(load_config(CGPORunConfig, path, sets))
    assert {f"eval/{n}/pass_rate" for n in names} <= set(result["after"].metrics)
    assert (tmp_path / "final" / "config.json").is_file()


@pytest.mark.parametrize("path", RM_EXAMPLES, ids=[p.name for p in RM_EXAMPLES])
def test_reward_model_example_trains_on_the_tiny_model(path, rm_tiny_dir, tmp_path):
    from blendrl.training.rm import run as rm_run

    cfg = load_config(RMRunConfig, path, [
        f"model.name={rm_tiny_dir}", "data.limit=16", "train.epochs=1", "train.batch_size=8",
        "train.micro_batch_size=8", f"logging.output_dir={tmp_path}", "logging.tensorboard=false",
        "logging.progress=false", "strength.models=2", "strength.epochs=1", f"strength.output={tmp_path}/mu.jsonl"])
    rm_run.strength(cfg)
    rm_run.train_rm(cfg)
    metrics = rm_run.eval_rm(cfg)
    assert (tmp_path / "final" / "config.json").is_file() and (tmp_path / "mu.jsonl").is_file() and metrics


@pytest.mark.parametrize("path", LAB_EXAMPLES, ids=[p.name for p in LAB_EXAMPLES])
def test_lab_example_runs_on_the_tiny_model(path, tiny_dir, tmp_path):
    """Every stage of the shipped lab on the tiny model: labels, proxies, SFT + soup, best-of-n, each PPO run (one
    iteration), the report; the gold reward is the example's own (MiniLM)."""
    from blendrl.config.lab_schema import OverOptLabConfig
    from blendrl.lab.overopt import run_lab

    cfg = load_config(OverOptLabConfig, path, [
        f"model.name={tiny_dir}", "generation.max_new_tokens=6", "labels.prompts=6", "proxy.members=2",
        "bon.pool=4", "bon.prompts=2", "ppo.base.train.iterations=1", "ppo.base.train.prompts_per_iteration=2",
        "ppo.base.train.samples_per_prompt=2", "ppo.eval_every=1", "ppo.eval_prompts=2",
        f"logging.output_dir={tmp_path}"])
    result = run_lab(cfg)
    assert result["labels"]["pairs"]["pairs"] > 0
