"""Every pure function of blendrl.functional on numbers computed by hand (see the comments)."""
import math

import pytest
import torch

import blendrl.functional as F


def t(x):
    return torch.tensor(x, dtype=torch.float64)


def close(a, b, tol=1e-6):
    assert torch.allclose(torch.as_tensor(a, dtype=torch.float64), t(b), atol=tol), (a, b)


def test_gae_matches_hand_computation_with_padding():
    rewards = t([[0.0, 0.0, 1.0], [0.0, 2.0, 5.0]])
    values = t([[0.5, 0.6, 0.7], [1.0, 1.0, 9.0]])
    mask = t([[1, 1, 1], [1, 1, 0]])
    adv, ret = F.gae(rewards, values, mask, gamma=1.0, lam=0.95)
    # row 0: δ2 = 1 - .7 = .3; δ1 = .7 - .6 = .1 → .1 + .95*.3 = .385; δ0 = .1 → .1 + .95*.385 = .46575
    # row 1: last token is padding (its reward 5 and value 9 are ignored): A1 = 2 - 1 = 1; A0 = 0 + .95 * 1
    close(adv, [[0.46575, 0.385, 0.3], [0.95, 1.0, 0.0]])
    close(ret, [[0.96575, 0.985, 1.0], [1.95, 2.0, 0.0]])


def test_gae_discounts_with_gamma():
    adv, _ = F.gae(t([[0.0, 0.0, 1.0]]), t([[0.5, 0.6, 0.7]]), t([[1, 1, 1]]), gamma=0.9, lam=0.5)
    # δ2 = .3; δ1 = .9*.7 - .6 = .03 → .03 + .45*.3 = .165; δ0 = .9*.6 - .5 = .04 → .04 + .45*.165 = .11425
    close(adv, [[0.11425, 0.165, 0.3]])


def test_policy_loss_clips_both_sides():
    old = t([[0.0, 0.0, 0.0]])
    logp = torch.log(t([[1.5, 0.5, 1.1]]))
    adv = t([[1.0, -1.0, 2.0]])
    # token 1: max(-1.5, -1.2) = -1.2; token 2: max(0.5, 0.8) = 0.8; token 3: -2.2 (inside the clip range)
    close(F.policy_loss(logp, old, adv, t([[1, 1, 1]]), 0.2), (-1.2 + 0.8 - 2.2) / 3)
    close(F.policy_loss(logp, old, adv, t([[1, 1, 0]]), 0.2), (-1.2 + 0.8) / 2)
    close(F.clip_fraction(logp, old, t([[1, 1, 1]]), 0.2), 2 / 3)


def test_value_loss_takes_the_larger_of_clipped_and_unclipped():
    # token 1: (1-2)^2 = 1 vs clip(1, .3, .7) = .7 → (.7-2)^2 = 1.69; token 2: (0-1)^2 = 1 vs (.3-1)^2 = .49
    loss = F.value_loss(t([[1.0, 0.0]]), t([[0.5, 0.5]]), t([[2.0, 1.0]]), t([[1, 1]]), 0.2)
    close(loss, 0.5 * (1.69 + 1.0) / 2)


@pytest.mark.parametrize(
    "kind, pos, neg",
    [
        # Δ = ln 2 (p = .5, q = .25) and Δ = -ln 2 (p = .25, q = .5)
        ("k1", math.log(2), -math.log(2)),
        ("k2", 0.5 * math.log(2) ** 2, 0.5 * math.log(2) ** 2),
        ("k3", 0.5 - 1 + math.log(2), 2 - 1 - math.log(2)),
        ("clamped", math.log(2), 0.0),
        # m = .375: ½[ln(p/m) + (q/p)·ln(q/m)]
        ("js", 0.5 * (math.log(4 / 3) + 0.5 * math.log(2 / 3)), 0.5 * (math.log(2 / 3) + 2 * math.log(4 / 3))),
        # the LoRA-PPO form: ½·ln(.5/.375) in both directions (the other term is clamped at 0)
        ("js_lora_ppo", 0.5 * math.log(4 / 3), 0.5 * math.log(4 / 3)),
    ],
)
def test_kl_estimators(kind, pos, neg):
    p, q = math.log(0.5), math.log(0.25)
    close(F.kl_penalty(t([[p, q]]), t([[q, p]]), kind), [[pos, neg]])


@pytest.mark.parametrize("p, q", [((0.9, 0.1), (0.5, 0.5)), ((0.2, 0.3, 0.5), (0.6, 0.3, 0.1))])
def test_js_estimator_is_unbiased_for_the_jensen_shannon_divergence(p, q):
    """E_{x~π}[js(x)] = JS(π, π_ref) exactly (0.102 for the first pair; the LoRA-PPO form gives 0.139 there).
    Mutation caught: any estimator whose expectation under π is not JS (the old clamped form)."""
    m = [(a + b) / 2 for a, b in zip(p, q)]
    js = 0.5 * sum(a * math.log(a / c) for a, c in zip(p, m)) + 0.5 * sum(b * math.log(b / c) for b, c in zip(q, m))
    per_token = F.kl_penalty(torch.log(t([p])), torch.log(t([q])), "js")[0]
    close(sum(a * float(e) for a, e in zip(p, per_token)), js)
    if p == (0.9, 0.1):
        assert round(js, 3) == 0.102
        lora = F.kl_penalty(torch.log(t([p])), torch.log(t([q])), "js_lora_ppo")[0]
        assert round(sum(a * float(e) for a, e in zip(p, lora)), 3) == 0.139


def test_unknown_kl_kind_names_the_choices():
    with pytest.raises(KeyError, match="k3"):
        F.kl_penalty(t([[0.0]]), t([[0.0]]), "k9")


def test_whiten_uses_masked_population_statistics():
    x, mask = t([[1.0, 2.0, 3.0, 100.0]]), t([[1, 1, 1, 0]])
    s = math.sqrt(2 / 3 + 1e-8)  # mean 2, population variance 2/3
    close(F.whiten(x, mask), [[-1 / s, 0.0, 1 / s, 98 / s]])
    close(F.whiten(x, mask, shift_mean=False), [[2 - 1 / s, 2.0, 2 + 1 / s, 2 + 98 / s]])


def test_masked_mean_is_over_all_valid_tokens_of_the_batch():
    close(F.masked_mean(t([[1.0, 2.0], [3.0, 9.0]]), t([[1, 1], [1, 0]])), 2.0)


def test_rloo_leave_one_out_baseline():
    close(F.rloo_advantages(t([1.0, 2.0, 3.0, 10.0, 20.0, 30.0]), 3), [-1.5, 0.0, 1.5, -15.0, 0.0, 15.0])
    with pytest.raises(ValueError):
        F.rloo_advantages(t([1.0, 2.0]), 1)


def test_grpo_group_normalisation_population_std():
    s = math.sqrt(2 / 3)
    out = F.grpo_advantages(t([1.0, 2.0, 3.0, 5.0, 5.0, 5.0]), 3)
    close(out, [-1 / (s + 1e-6), 0.0, 1 / (s + 1e-6), 0.0, 0.0, 0.0])


def test_reinforce_batch_mean_baseline():
    close(F.reinforce_advantages(t([1.0, 2.0, 3.0, 6.0])), [-2.0, -1.0, 0.0, 3.0])


def test_grouping_errors_name_the_sizes():
    with pytest.raises(ValueError, match="k=4"):
        F.grpo_advantages(t([1.0, 2.0, 3.0]), 4)


def test_adaptive_kl_controller_follows_ziegler():
    ctl = F.AdaptiveKLController(0.2, target=6.0, horizon=10000)
    ctl.update(9.0, n_steps=100)  # e = clip(9/6 - 1) = 0.2 → 0.2 * (1 + 0.2 * 100 / 10000)
    assert ctl.value == pytest.approx(0.2004)
    ctl = F.AdaptiveKLController(0.2, target=6.0, horizon=10000)
    ctl.update(3.0, n_steps=100)  # e = -0.5 → clipped to -0.2
    assert ctl.value == pytest.approx(0.1996)
    fixed = F.FixedKLController(0.1)
    fixed.update(100.0, 10)
    assert fixed.value == 0.1


def test_token_rewards_put_the_score_on_the_last_valid_token():
    out = F.token_rewards(t([1.0, 2.0]), t([[0.1, 0.2, 0.3], [0.5, 0.5, 0.5]]), t([[1, 1, 1], [1, 1, 0]]), 0.5)
    close(out, [[-0.05, -0.1, -0.15 + 1.0], [-0.25, -0.25 + 2.0, 0.0]])


def test_running_moments_normalise_and_clip():
    rm = F.RunningMoments()
    rm.update(t([1.0, 2.0, 3.0]))
    assert (rm.mean, rm.var) == pytest.approx((2.0, 2 / 3))
    out = rm.normalize(t([4.0, 5.0]), clip=1.0)  # history is now 1..5: mean 3, population var 2
    close(out, [1 / math.sqrt(2), 1.0])
    assert rm.count == 5
    restored = F.RunningMoments()
    restored.load_state_dict(rm.state_dict())
    assert (restored.mean, restored.var, restored.count) == (rm.mean, rm.var, rm.count)


def test_missing_eos_penalty():
    close(F.apply_missing_eos_penalty(t([1.0, 1.0]), torch.tensor([True, False]), 0.5), [1.0, 0.5])


def test_running_moments_fold_single_scores_and_scale_or_normalise_with_both_clips():
    rm = F.RunningMoments()
    rm.update(t([3.0]))  # a batch of one is a batch: mean 3, var 0
    rm.update(t([5.0]))  # the second folds into the first: mean 4, population var 1
    assert (rm.mean, rm.var, rm.count) == (4.0, 1.0, 2)
    rm = F.RunningMoments()
    close(rm.normalize(t([1.0, 1.5])), [-1.0, 1.0])  # std 0.25 < 1: only the 1e-8 floor applies
    close(F.RunningMoments().normalize(t([1.0, 1.5]), clip=0.5), [-0.5, 0.5])
    close(F.RunningMoments().normalize(t([1.0, 1.5]), mode="scale"), [4.0, 6.0])  # x / σ, no mean shift
    close(F.RunningMoments().normalize(t([1.0, 1.5]), clip=None, mode="scale"), [4.0, 6.0])


def test_loss_aggregations_on_hand_numbers():
    """Two sequences: losses [1, 2, 3] and [4, 0, 0] with masks [1, 1, 1] and [1, 0, 0]; a third is all masked."""
    from blendrl.functional.losses import LOSS_AGGREGATIONS, aggregate

    x = t([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0], [9.0, 9.0, 9.0]])
    m = t([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert aggregate(x, m, "token-mean").item() == pytest.approx((1 + 2 + 3 + 4) / 4)  # 2.5
    assert aggregate(x, m, "seq-mean-token-mean").item() == pytest.approx((2.0 + 4.0) / 2)  # 3
    assert aggregate(x, m, "seq-mean-token-sum").item() == pytest.approx((6.0 + 4.0) / 2)  # 5
    assert aggregate(x, m, "seq-mean-token-sum-norm", horizon=8).item() == pytest.approx((6 / 8 + 4 / 8) / 2)
    assert LOSS_AGGREGATIONS["token-mean"].units(m).item() == 4
    assert LOSS_AGGREGATIONS["seq-mean-token-mean"].units(m).item() == 2  # the all-masked row is no unit
    # the policy loss with A = 1 and ratio 1 is −1 on each token: the aggregate of −1s
    logp = torch.zeros(3, 3)
    assert F.policy_loss(logp, logp, torch.ones(3, 3), m, 0.2, "seq-mean-token-sum").item() == pytest.approx(-2.0)


def test_truncated_importance_weights_on_hand_numbers():
    """π_old = (0.5, 0.2), the engine's (0.25, 0.4): ratios 2 and 0.5, capped at 1.5 → (1.5, 0.5); with ratio 1 and
    A = (1, −2) the surrogate per token is (−1, 2), weighted (−1.5, 1), mean −0.25; the weights carry no gradient."""
    from blendrl.functional.losses import tis_weights

    old, engine = torch.log(t([[0.5, 0.2]])), torch.log(t([[0.25, 0.4]]))
    w = tis_weights(old, engine.requires_grad_(), 1.5)
    close(w, [[1.5, 0.5]])
    assert not w.requires_grad
    logp = old.clone().requires_grad_()
    loss = F.policy_loss(logp, old, t([[1.0, -2.0]]), torch.ones(1, 2), 0.2, weights=w)
    assert loss.item() == pytest.approx(-0.25)
    loss.backward()  # d/dlogp of −A·w·ratio at ratio 1, over 2 tokens: (−1·1.5/2, 2·0.5/2)
    close(logp.grad, [[-0.75, 0.5]])


def test_clipping_and_ratio_variants_on_hand_numbers():
    """r = e^0.3 = 1.3499 with A = 1: symmetric ε 0.2 caps it at 1.2, clip-higher (0.2, 0.28) at 1.28. Dual clip
    c = 3, A = −1, r = 5: PPO's max(5, 0.8·… ) = 5 is capped at 3. GSPO: token log-ratios 0.1 and 0.3 share
    s = e^0.2 = 1.2214 (inside 1.28). CISPO: −clip(r)·A·logp with the weight stopped: ∂/∂logp = −1.28·A."""
    import math

    from blendrl.functional.surrogates import Clip

    one = torch.ones(1, 1)
    logp, old = t([[0.3]]), t([[0.0]])
    close(F.policy_loss(logp, old, one, one, 0.2), [-1.2])
    close(F.policy_loss(logp, old, one, one, Clip(0.2, 0.28)), [-1.28])
    assert F.clip_fraction(logp, old, one, Clip(0.2, 0.4)).item() == 0.0  # 1.35 < 1.4: not clipped
    big = t([[math.log(5.0)]])
    close(F.policy_loss(big, old, -one, one, 0.2), [5.0])
    close(F.policy_loss(big, old, -one, one, Clip(0.2, 0.2, 3.0)), [3.0])
    two = torch.ones(1, 2)
    lp2 = t([[0.1, 0.3]]).requires_grad_()
    loss = F.policy_loss(lp2, torch.zeros(1, 2), two, two, Clip(0.2, 0.28), kind="gspo")
    close(loss, [-math.exp(0.2)])
    loss.backward()  # −d/dlogp_t of s = e^{mean}: −s/2 for each token
    close(lp2.grad, [[-math.exp(0.2) / 2, -math.exp(0.2) / 2]])
    assert F.clip_fraction(lp2.detach(), torch.zeros(1, 2), two, Clip(0.2, 0.28), "gspo").item() == 0.0
    lp = t([[0.3]]).requires_grad_()
    loss = F.policy_loss(lp, old, 2 * one, one, Clip(0.2, 0.28), kind="cispo")
    close(loss, [-1.28 * 2 * 0.3])
    loss.backward()
    close(lp.grad, [[-1.28 * 2]])
    assert F.clip_fraction(lp.detach(), old, one, Clip(0.2, 0.28), "cispo").item() == 1.0
    inside = t([[0.1]]).requires_grad_()  # r = e^0.1 inside the clip: the stopped weight keeps r out of the grad
    F.policy_loss(inside, old, one, one, Clip(0.2, 0.28), kind="cispo").backward()
    close(inside.grad, [[-math.exp(0.1)]])
