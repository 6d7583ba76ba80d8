"""REINFORCE with Lagrange multipliers as a CGPO task optimizer (docs/algorithms.md §13): the dual update and the
penalised advantage on hand numbers; in a tiny run where the constraint binds, the multiplier rises while the
violation rate is above its threshold, the rate falls, and the multipliers are logged and resume from the
checkpoint."""
import json

import pytest
import torch

from blendrl.functional.cgpo import dual_ascent, lagrangian_advantages
from tests.tiny import tiny_cgpo_config


def test_dual_ascent_by_hand():
    lam = torch.tensor([1.0, 0.02])
    # λ₀: 1 + 0.5·(0.6 − 0.1) = 1.25; λ₁: max(0, 0.02 + 0.5·(0 − 0.1)) = 0
    assert torch.allclose(dual_ascent(lam, torch.tensor([0.6, 0.0]), torch.tensor([0.1, 0.1]), 0.5),
                          torch.tensor([1.25, 0.0]))


def test_penalised_advantage_by_hand():
    reward = torch.tensor([0.8, 0.6, 0.4])
    costs = torch.tensor([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])  # sample 0 fails judge 0, sample 2 fails both
    lam = torch.tensor([0.5, 0.25])
    seq_kl = torch.tensor([0.0, 5.0, 0.0])  # KL_max 10: factors 1, 0.5, 1
    # r̃ = (0.8 − 0.5, 0.3 − 0, 0.4 − 0.75) = (0.3, 0.3, −0.35); mean 0.08333
    adv = lagrangian_advantages(reward, costs, lam, seq_kl, 10.0)
    assert torch.allclose(adv, torch.tensor([0.3, 0.3, -0.35]) - 0.25 / 3, atol=1e-6)


def _cfg(tiny_dir, out, **over):
    """One task: a reward for long answers (the `length` rule via a callable), a judge allowing at most 3 words:
    the reward pushes against the constraint."""
    cfg = tiny_cgpo_config(tiny_dir, out, **{"train.iterations": 6, "logging.eval_before": False,
                                             "generation.max_new_tokens": 8, **over})
    task = cfg.tasks[0]
    cfg.tasks = [task]
    task.name, task.eval_prompts = "short", None
    from blendrl.config import RewardSourceConfig
    from blendrl.config.cgpo_schema import JudgeConfig

    task.rewards = [RewardSourceConfig(kind="callable", name="tests.tiny:word_share")]
    task.judges = [JudgeConfig(kind="format", name="few_words", options={"max_words": 3, "max_repetition": None})]
    task.optimizer.name, task.optimizer.threshold, task.optimizer.lambda_init = "lagrangian-reinforce", 0.2, 0.0
    task.optimizer.lambda_lr = 2.0
    task.samples_per_prompt, task.prompts_per_iteration = 4, 4
    return cfg


def _metrics(out):
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def test_the_multiplier_rises_while_the_constraint_binds_and_the_violations_fall(tiny_dir, tmp_path):
    from blendrl.training.cgpo.run import run_cgpo

    run_cgpo(_cfg(tiny_dir, tmp_path))
    m = _metrics(tmp_path)
    lam = [x["short/lagrangian/lambda/few_words"] for x in m]
    viol = [x["short/lagrangian/violation/few_words"] for x in m]
    assert viol[0] > 0.2 and lam[0] > 0  # violated at the start: the price went up
    assert all(b >= a for a, b, v in zip(lam, lam[1:], viol[1:]) if v > 0.2)  # rises while above the threshold
    assert min(viol[-2:]) < viol[0]  # the policy moved toward the constraint


def test_multipliers_resume_from_the_checkpoint(tiny_dir, tmp_path):
    from blendrl.training.cgpo.run import run_cgpo

    straight = run_cgpo(_cfg(tiny_dir, tmp_path / "a", **{"train.iterations": 4}))["trainer"]
    run_cgpo(_cfg(tiny_dir, tmp_path / "b", **{"train.iterations": 4, "logging.save_every": 2}), stop_after=2)
    resumed = run_cgpo(_cfg(tiny_dir, tmp_path / "b", **{"train.iterations": 4}), resume=str(tmp_path / "b"))
    assert resumed["trainer"].tasks[0].optimizer.multipliers == pytest.approx(straight.tasks[0].optimizer.multipliers)
    a, b = straight.m.policy.state_dict(), resumed["trainer"].m.policy.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_advantages_use_the_multiplier_after_this_batch_s_dual_step():
    """Algorithm order: λ ← max(0, λ + lr·(violation − threshold)) on this batch, then r̃ with that λ. Mutation
    caught: the advantages computed with λ from before its update."""
    from blendrl.algorithms.cgpo import CGPO_OPTIMIZERS
    from blendrl.config.cgpo_schema import OptimizerConfig
    from blendrl.training.experience import teacher_forced_experience

    name = "lagrangian-reinforce"
    opt = CGPO_OPTIMIZERS[name](OptimizerConfig(name=name, threshold=0.1, lambda_init=1.0, lambda_lr=0.5, kl_max=10.0))
    exp = teacher_forced_experience([[1, 2]] * 4, [[3, 4]] * 4, 0, [True] * 4)
    reward = torch.tensor([0.8, 0.6, 0.4, 0.2])
    ok = torch.tensor([False, True, False, True])  # violation rate 0.5
    seq_kl = torch.zeros(4)
    selection, metrics = opt.select(exp, reward, ok, seq_kl, 2, per_judge={"short": ok})
    lam = 1.0 + 0.5 * (0.5 - 0.1)  # 1.2
    want = lagrangian_advantages(reward, (~ok).float()[:, None], torch.tensor([lam]), seq_kl, 10.0)
    assert metrics["lagrangian/lambda/short"] == pytest.approx(lam)
    assert torch.allclose(selection.rows.seq_weights, want)
    # by hand: r̃ = (0.8 − 1.2, 0.6, 0.4 − 1.2, 0.2) = (−0.4, 0.6, −0.8, 0.2), mean −0.1
    assert selection.rows.seq_weights.tolist() == pytest.approx([-0.3, 0.7, -0.7, 0.3])
