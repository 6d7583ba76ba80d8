"""CGPO's optimizers (ALGORITHMS.md §1) on hand-computed numbers."""
import math

import pytest
import torch

from blendrl.functional import cgpo as F


def test_calibrated_reward_is_sigmoid_of_the_difference():
    r = F.calibrated_reward(torch.tensor([2.0, 0.0]), torch.tensor([1.0, 0.0]))
    assert torch.allclose(r, torch.tensor([1 / (1 + math.exp(-1)), 0.5]))


def test_crpg_advantages_gate_by_judges_and_kl_budget():
    reward = torch.tensor([0.8, 0.6, 0.9, 0.5])
    passed = torch.tensor([True, True, False, True])
    seq_kl = torch.tensor([0.0, 5.0, 0.0, 12.0])  # KL_max 10: factors 1, 0.5, 1, 0 (clamped)
    adv = F.crpg_advantages(reward, passed, seq_kl, kl_max=10.0)
    r_tilde = torch.tensor([0.8, 0.3, 0.0, 0.0])  # 0.9 fails a judge; 0.5 is past the KL budget
    assert torch.allclose(adv, r_tilde - r_tilde.mean())


def test_crpg_loss_is_minus_advantage_times_sequence_logprob():
    logp = torch.tensor([[-1.0, -2.0, -9.0], [-0.5, -0.5, -0.5]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    loss = F.crpg_loss(logp, mask, torch.tensor([0.5, -0.25]))
    assert torch.isclose(loss, torch.tensor(-(0.5 * -3.0 + -0.25 * -1.5)))


def test_codpo_pairs_follow_eq_13_14():
    # prompt 0: passing {0, 2} → a⁺ = 2 (r .7); failing {1, 3} → a⁻ = 3 (r .1)
    # prompt 1: nothing passes → skipped
    # prompt 2: all pass → a⁺ = argmax (row 9), a⁻ = argmin over the others (row 10)
    reward = torch.tensor([.5, .2, .7, .1, .9, .8, .7, .6, .3, .95, .05, .4])
    passed = torch.tensor([1, 0, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1], dtype=torch.bool)
    chosen, rejected = F.codpo_pairs(reward, passed, k=4)
    assert chosen.tolist() == [2, 9] and rejected.tolist() == [3, 10]


def test_codpo_loss_on_hand_values():
    beta, lam = 0.1, 5.0
    logp = torch.tensor([[-1.0, -1.0], [-2.0, -3.0]])  # rows: a⁺, a⁻
    ref = torch.tensor([[-1.5, -1.5], [-2.0, -2.0]])
    mask = torch.ones(2, 2)
    # log-ratios: a⁺ = -2 - (-3) = 1; a⁻ = -5 - (-4) = -1 → −log σ(0.1·2) − 5·(−2)/2
    want = -math.log(1 / (1 + math.exp(-0.2))) + 5.0
    assert math.isclose(F.codpo_loss(logp, ref, mask, beta, lam).item(), want, rel_tol=1e-6)


def test_crraft_winners_drop_violations_and_kl_then_take_argmax():
    reward = torch.tensor([.9, .8, .3, .6, .7, .2])
    passed = torch.tensor([True, True, True, False, False, True])
    seq_kl = torch.tensor([20.0, 1.0, 1.0, 0.0, 0.0, 50.0])
    winners, empty = F.crraft_winners(reward, passed, seq_kl, kl_max=10.0, k=3)
    assert winners.tolist() == [1]  # row 0 is past KL_max; row 1 beats row 2
    assert empty.tolist() == [1]  # prompt 1: 3 and 4 fail judges, 5 is past KL_max


def test_crraft_loss_weights_winners_by_calibrated_reward():
    logp = torch.tensor([[-1.0, -1.0], [-2.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    loss = F.crraft_loss(logp, mask, torch.tensor([0.75, 0.5]))
    assert torch.isclose(loss, torch.tensor(-(0.75 * -2.0 + 0.5 * -2.0)))


# ---------------------------------------------------------------------- survivors of the mutation run (docs/testing.md)
def test_crpg_loss_weights_each_sequence_by_its_own_advantage():
    logp = torch.tensor([[-1.0, -2.0], [-0.5, 0.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    # −(2·(−3) + (−1)·(−0.5)) = 5.5; summing logp over the whole batch first would give −(1)·(−3.5) = 3.5
    assert F.crpg_loss(logp, mask, torch.tensor([2.0, -1.0])).item() == pytest.approx(5.5)


def test_groups_refuse_two_dimensional_or_ragged_input():
    with pytest.raises(ValueError, match=r"1-D tensor of B×K=2 samples, got shape \(2, 2\)"):
        F.codpo_pairs(torch.zeros(2, 2), torch.ones(2, 2, dtype=torch.bool), 2)
    with pytest.raises(ValueError, match=r"got shape \(3,\)"):
        F.codpo_pairs(torch.zeros(3), torch.ones(3, dtype=torch.bool), 2)


def test_codpo_pairs_with_two_samples_and_a_prompt_without_a_pass_in_front():
    reward = torch.tensor([0.9, 0.1, 0.2, 0.7, 0.3, 0.8])
    passed = torch.tensor([False, False, True, True, True, False])
    chosen, rejected = F.codpo_pairs(reward, passed, 2)
    # prompt 0: nothing passes (skipped, the loop goes on); prompt 1: both pass → a⁺ = row 3, a⁻ = row 2;
    # prompt 2: row 4 passes, row 5 fails
    assert chosen.tolist() == [3, 4] and rejected.tolist() == [2, 5]
    assert chosen.dtype == rejected.dtype == torch.long


def test_codpo_loss_uses_the_positive_length_and_the_default_lambda_for_several_pairs():
    # two pairs; the positive of pair 0 has 1 token, its negative 2 (so |a⁺| ≠ |a⁻|)
    logp = torch.tensor([[-1.0, 0.0], [-0.5, -0.5], [-0.2, -0.2], [-2.0, 0.0]])
    ref = torch.zeros(4, 2)
    mask = torch.tensor([[1.0, 0.0], [1.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    lsig = torch.nn.functional.logsigmoid
    want = (-lsig(torch.tensor(0.1 * (-1.0 + 1.0))) + 5.0 * 1.0 / 1) + (-lsig(torch.tensor(0.1 * (-0.4 + 2.0)))
                                                                        + 5.0 * 0.4 / 2)
    assert F.codpo_loss(logp, ref, mask).item() == pytest.approx(want.item(), rel=1e-6)


def test_crraft_keeps_a_sample_exactly_at_kl_max_and_indexes_later_prompts():
    reward = torch.tensor([0.5, 0.9, 0.1, 0.2, 0.6, 0.4])
    passed = torch.tensor([False, False, True, True, True, True])
    seq_kl = torch.tensor([0.0, 0.0, 1.0, 3.0, 2.0, 0.5])
    winners, empty = F.crraft_winners(reward, passed, seq_kl, 2.0, 2)
    # prompt 0: none passes (empty, the loop goes on); prompt 1: row 3 is over KL_max → row 2;
    # prompt 2: row 4 sits exactly at KL_max = 2 and has the higher reward
    assert winners.tolist() == [2, 4] and empty.tolist() == [0] and winners.dtype == empty.dtype == torch.long
    # empty selections are still index tensors (a float tensor cannot index the batch)
    winners, empty = F.crraft_winners(reward[:2], passed[:2], seq_kl[:2], 2.0, 2)
    assert winners.dtype == torch.long and winners.numel() == 0
    winners, empty = F.crraft_winners(reward[2:4], passed[2:4], seq_kl[2:4], 2.0, 2)
    assert empty.dtype == torch.long and empty.numel() == 0
