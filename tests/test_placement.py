"""Every frozen scoring model a run builds sits where the run says: the policy's device and the run's dtype
(:class:`blendrl.core.types.ModelPlacement`). Checked on the built modules' parameters with the device resolved to
``meta``, so it runs without a GPU: a reward source built outside the one path stays on the CPU in float32."""
import pytest
import torch

from blendrl.config import RewardSourceConfig
from tests.tiny import tiny_cgpo_config, tiny_config


def _modules(source):
    """Every torch module a (weighted, ensemble, ...) reward source holds."""
    seen, out, todo = set(), [], [source]
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, torch.nn.Module):
            out.append(obj)
            continue
        if isinstance(obj, (list, tuple)):
            todo += list(obj)
        elif isinstance(obj, dict):
            todo += list(obj.values())
        elif hasattr(obj, "__dict__") and type(obj).__module__.startswith("blendrl"):
            todo += list(vars(obj).values())
    return out


def _placed_like_the_run(source, dtype):
    modules = _modules(source)
    assert modules, "the source holds no model: the test would prove nothing"
    for m in modules:
        for p in m.parameters():
            assert p.device.type == "meta" and p.dtype == dtype, (type(m).__name__, p.device, p.dtype)


@pytest.fixture
def meta_device(monkeypatch):
    from blendrl.core import dist

    monkeypatch.setattr(dist, "resolve_device", lambda name="auto": torch.device("meta"))


def test_cgpo_task_reward_models_follow_the_run_device_and_dtype(tiny_dir, tmp_path, meta_device):
    from blendrl.training.cgpo.run import build_cgpo_trainer

    cfg = tiny_cgpo_config(tiny_dir, tmp_path, **{"model.dtype": "bfloat16"})
    for t in cfg.tasks:
        t.rewards = [RewardSourceConfig(kind="hf_rm", name="rm", path=str(tiny_dir))]
    trainer = build_cgpo_trainer(cfg)
    assert next(trainer.m.policy.parameters()).device.type == "meta"
    for task in trainer.tasks:
        _placed_like_the_run(task.reward, torch.bfloat16)


def test_ppo_and_summed_ppo_reward_models_follow_the_run_device_and_dtype(tiny_dir, tmp_path, meta_device):
    from blendrl.training.cgpo.summed_ppo import build_summed_ppo
    from blendrl.training.run import build_trainer

    cfg = tiny_config(tiny_dir, tmp_path / "ppo", **{"model.dtype": "bfloat16"})
    cfg.rewards = [RewardSourceConfig(kind="hf_rm", name="rm", path=str(tiny_dir)),
                   RewardSourceConfig(kind="ensemble", name="ens", options={"members": [str(tiny_dir)] * 2,
                                                                           "share": "none"})]
    _placed_like_the_run(build_trainer(cfg).reward, torch.bfloat16)
    cgpo = tiny_cgpo_config(tiny_dir, tmp_path / "cgpo", **{"model.dtype": "bfloat16"})
    for t in cgpo.tasks:
        t.rewards = [RewardSourceConfig(kind="hf_rm", name="rm", path=str(tiny_dir))]
    _placed_like_the_run(build_summed_ppo(cgpo).reward, torch.bfloat16)


def test_an_explicit_option_wins_over_the_run_placement(tiny_dir):
    from blendrl.core.types import ModelPlacement
    from blendrl.rewards import build_reward

    reward = build_reward([RewardSourceConfig(kind="hf_rm", name="rm", path=str(tiny_dir),
                                              options={"device": "cpu", "dtype": "float32"})],
                          ModelPlacement("meta", "bfloat16"))
    p = next(_modules(reward)[0].parameters())
    assert p.device.type == "cpu" and p.dtype == torch.float32


def test_an_llm_judge_of_a_cgpo_task_runs_in_the_run_dtype(tiny_dir, tmp_path):
    from blendrl.config.cgpo_schema import JudgeConfig
    from blendrl.training.cgpo.run import build_cgpo_trainer

    cfg = tiny_cgpo_config(tiny_dir, tmp_path, **{"model.dtype": "bfloat16"})
    cfg.tasks = cfg.tasks[:1]
    cfg.tasks[0].judges = [JudgeConfig(kind="llm", name="helpful", options={
        "model": str(tiny_dir), "template": "is {response} good ?", "pass_token": "yes", "fail_token": "no",
        "defense": "none"})]
    judge = build_cgpo_trainer(cfg).tasks[0].judges.judges[0]
    assert {p.dtype for p in judge.model.parameters()} == {torch.bfloat16}
