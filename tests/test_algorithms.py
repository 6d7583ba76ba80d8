"""The algorithms' ``prepare`` on hand-built experience (no model): what reaches the advantages and returns."""
import math

import pytest
import torch


@pytest.mark.parametrize("name", ["rloo", "grpo", "reinforce"])
def test_critic_free_estimators_honour_whiten_advantages(name):
    """``algorithm.whiten_advantages: true`` whitens RLOO/GRPO/REINFORCE advantages over the response tokens; the
    default (None) leaves them as the estimator made them. Mutation caught: the flag ignored by critic-free
    algorithms (it used to be, silently)."""
    from types import SimpleNamespace

    from blendrl.algorithms.critic_free import build_algorithm
    from blendrl.config import AlgorithmConfig, KLConfig
    from blendrl.functional import SEQUENCE_ADVANTAGES, whiten

    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    scores = torch.tensor([1.0, 3.0, 0.0, 4.0])

    def advantages(flag):
        exp = SimpleNamespace(response_mask=mask, scores=scores, behaviour_logp=torch.zeros(4, 3),
                              ref_logp=torch.zeros(4, 3))
        build_algorithm(AlgorithmConfig(name=name, whiten_advantages=flag), KLConfig(coef=0.0), 2).prepare(exp, 0.0)
        return exp.advantages

    raw = SEQUENCE_ADVANTAGES[name](scores, 2)[:, None] * mask
    assert torch.allclose(advantages(None), raw) and torch.allclose(advantages(False), raw)
    white = advantages(True)
    assert torch.allclose(white, whiten(raw, mask) * mask)
    assert abs(float((white * mask).sum() / mask.sum())) < 1e-6 and not torch.allclose(white, raw)


@pytest.mark.parametrize("whiten_rewards", [False, True])
def test_ppo_puts_the_kl_in_the_token_rewards_and_whitens_them_when_asked(whiten_rewards):
    """β > 0: r_t = −β·kl_t, plus the score on the last token; ``whiten_rewards`` rescales their deviations by the
    std (the mean kept) before GAE. With γ = λ = 1 and zero values the returns are suffix sums of those rewards.
    Mutations caught: KL left out of the reward, ``whiten_rewards`` ignored."""
    from types import SimpleNamespace

    from blendrl.algorithms import ALGORITHMS
    from blendrl.config import AlgorithmConfig, KLConfig

    exp = SimpleNamespace(response_mask=torch.ones(1, 3), scores=torch.tensor([1.0]),
                          behaviour_logp=torch.tensor([[0.5, -0.2, 0.1]]), ref_logp=torch.zeros(1, 3),
                          values=torch.zeros(1, 3), token_scores=None)  # an Experience's fields
    algo = ALGORITHMS["ppo"](AlgorithmConfig(gamma=1.0, lam=1.0, whiten_rewards=whiten_rewards), KLConfig(coef=0.1))
    algo.prepare(exp, 0.1)
    r = [-0.05, 0.02, -0.01 + 1.0]
    if whiten_rewards:
        mean = sum(r) / 3
        std = math.sqrt(sum((x - mean) ** 2 for x in r) / 3 + 1e-8)
        r = [mean + (x - mean) / std for x in r]  # TRL's whitening without the mean shift keeps the mean
    assert torch.allclose(exp.returns, torch.tensor([[r[0] + r[1] + r[2], r[1] + r[2], r[2]]]), atol=1e-5)


def test_critic_free_sequence_reward_subtracts_each_row_s_own_kl():
    """r_i = score_i − β·Σ_t kl_{i,t} (KL in the reward), then the estimator. Mutations caught: the KL added, or
    summed over the whole batch instead of per row."""
    from types import SimpleNamespace

    from blendrl.algorithms.critic_free import build_algorithm
    from blendrl.config import AlgorithmConfig, KLConfig
    from blendrl.functional import SEQUENCE_ADVANTAGES

    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    exp = SimpleNamespace(response_mask=mask, scores=torch.tensor([1.0, 2.0, 0.5, 0.0]),
                          behaviour_logp=torch.tensor([[0.5, 0.5], [1.0, 9.0], [0.0, 0.0], [-1.0, 3.0]]),
                          ref_logp=torch.zeros(4, 2))
    metrics = build_algorithm(AlgorithmConfig(name="rloo"), KLConfig(coef=0.5), 2).prepare(exp, 0.5)
    rewards = torch.tensor([1.0 - 0.5 * 1.0, 2.0 - 0.5 * 1.0, 0.5 - 0.0, 0.0 - 0.5 * 2.0])  # row 1's 9 is masked
    assert torch.allclose(exp.advantages, SEQUENCE_ADVANTAGES["rloo"](rewards, 2)[:, None] * mask)
    assert metrics == {"pg/sequence_reward_mean": pytest.approx(rewards.mean().item()),
                       "pg/advantage_abs_mean": pytest.approx(exp.advantages[:, 0].abs().mean().item())}


def test_sequence_estimators_refuse_scores_that_are_not_one_dimensional():
    from blendrl.functional import SEQUENCE_ADVANTAGES

    with pytest.raises(ValueError, match=r"scores must be 1-D \(N,\), got shape \(2, 2\)"):
        SEQUENCE_ADVANTAGES["rloo"](torch.zeros(2, 2), 2)


# ---------------------------------------------------------------------- CGPO's optimizers as loop pieces
def cgpo_batch(n: int, t: int = 2):
    """An Experience of ``n`` rows whose row i has input id i (so selections can be read back)."""
    from blendrl.training.experience import Experience

    ids = torch.arange(n)[:, None].repeat(1, 1 + t)
    return Experience(input_ids=ids, attention_mask=torch.ones(n, 1 + t), position_ids=torch.arange(1 + t).repeat(n, 1),
                      response_mask=torch.ones(n, t), behaviour_logp=torch.zeros(n, t), ref_logp=torch.zeros(n, t))


def cgpo_optimizer(name, **cfg):
    from blendrl.algorithms.cgpo import CGPO_OPTIMIZERS
    from blendrl.config.cgpo_schema import OptimizerConfig

    return CGPO_OPTIMIZERS[name](OptimizerConfig(name=name, **cfg))


def test_crpg_trains_every_row_with_its_constrained_advantage():
    from blendrl.functional import cgpo as F

    opt = cgpo_optimizer("crpg", kl_max=4.0)
    reward, passed = torch.tensor([0.8, 0.4, 0.6, 0.2]), torch.tensor([True, False, True, True])
    seq_kl = torch.tensor([1.0, 0.0, 2.0, 8.0])
    sel, metrics = opt.select(cgpo_batch(4), reward, passed, seq_kl, 2)
    assert sel.rows.input_ids[:, 0].tolist() == [0, 1, 2, 3] and sel.group == 1 and opt.units(sel.rows) == 4.0
    assert torch.allclose(sel.rows.seq_weights, F.crpg_advantages(reward, passed, seq_kl, 4.0))
    assert metrics["crpg/kl_factor_mean"] == pytest.approx((0.75 + 1.0 + 0.5 + 0.0) / 4)
    logp = torch.tensor([[-1.0, -1.0], [-2.0, 0.0], [0.0, -0.5], [-1.0, 0.0]])
    assert torch.allclose(opt.loss(sel.rows, logp), F.crpg_loss(logp, sel.rows.response_mask, sel.rows.seq_weights))


def test_codpo_orders_rows_as_pairs_counts_pairs_and_uses_its_beta_and_lambda():
    from blendrl.functional import cgpo as F

    opt = cgpo_optimizer("codpo", beta=0.3, lam=2.0)
    reward = torch.tensor([0.1, 0.9, 0.5, 0.4, 0.3, 0.2])
    passed = torch.tensor([True, True, False, False, True, False])
    sel, metrics = opt.select(cgpo_batch(6), reward, passed, torch.zeros(6), 2)
    # prompt 0: both pass → (1, 0); prompt 1: none passes; prompt 2: (4, 5)
    assert sel.rows.input_ids[:, 0].tolist() == [1, 0, 4, 5] and sel.group == 2
    assert opt.units(sel.rows) == 2 and metrics["codpo/pairs_per_prompt"] == pytest.approx(2 / 3)
    logp = torch.tensor([[-1.0, 0.0], [-2.0, -1.0], [-0.5, -0.5], [-3.0, 0.0]])
    want = F.codpo_loss(logp, sel.rows.ref_logp, sel.rows.response_mask, 0.3, 2.0)
    assert torch.allclose(opt.loss(sel.rows, logp), want)
    assert not torch.allclose(want, F.codpo_loss(logp, sel.rows.ref_logp, sel.rows.response_mask))


def test_crraft_trains_winners_weighted_by_reward_and_reports_prompts_for_the_fallback():
    from blendrl.algorithms.cgpo import CRRAFT
    from blendrl.functional import cgpo as F

    opt = cgpo_optimizer("crraft", kl_max=1.0)
    reward = torch.tensor([0.7, 0.2, 0.9, 0.4, 0.0, 0.3, 0.5, 0.6])
    passed = torch.tensor([True, True, False, False, True, False, True, True])
    seq_kl = torch.tensor([0.5, 0.1, 0.0, 0.0, 0.2, 0.0, 0.0, 3.0])
    sel, metrics = opt.select(cgpo_batch(8), reward, passed, seq_kl, 2)
    assert sel.rows.input_ids[:, 0].tolist() == [0, 4, 6] and sel.fallback_prompts.tolist() == [1]
    assert sel.rows.seq_weights.tolist() == pytest.approx([0.7, 0.0, 0.5])
    assert opt.units(sel.rows) == 2.0  # a zero-weight winner is not a unit
    assert metrics["crraft/prompts_with_winner"] == pytest.approx(3 / 4) and CRRAFT.fallback_weight == 0.5
    one, m1 = opt.select(cgpo_batch(2), reward[:2], passed[:2], seq_kl[:2], 2)  # a single prompt
    assert m1["crraft/prompts_with_winner"] == 1.0
    none, _ = opt.select(cgpo_batch(2), reward[2:4], passed[2:4], seq_kl[2:4], 2)  # no winner at all
    assert len(none.rows) == 0 and none.fallback_prompts.tolist() == [0]
    logp = torch.tensor([[-1.0, -1.0], [-2.0, 0.0], [-0.5, 0.0]])
    assert torch.allclose(opt.loss(sel.rows, logp), F.crraft_loss(logp, sel.rows.response_mask, sel.rows.seq_weights))


def test_kl_controllers_round_trip_their_state():
    from blendrl.functional import AdaptiveKLController, FixedKLController

    a = AdaptiveKLController(0.2, 6.0, 100.0)
    a.update(12.0, 10)
    b = AdaptiveKLController(1.0, 1.0, 1.0)
    b.load_state_dict(a.state_dict())
    # the value is the state; target and horizon come from the config
    assert b.value == a.value == pytest.approx(0.2 * 1.02)
    assert a.state_dict() == {"value": a.value, "target": 6.0, "horizon": 100.0}
    f = FixedKLController(0.0)
    f.load_state_dict(FixedKLController(0.3).state_dict())
    assert f.value == 0.3


def test_an_algorithm_without_a_critic_says_so():
    from blendrl.algorithms.critic_free import build_algorithm
    from blendrl.config import AlgorithmConfig, KLConfig

    with pytest.raises(NotImplementedError, match="RLOO has no critic"):
        build_algorithm(AlgorithmConfig(name="rloo"), KLConfig(), 2).critic_loss(None, None)


@pytest.mark.parametrize("kind", ["k1", "k3"])
def test_the_loss_side_kl_term_back_propagates(kind):
    """With ``kl.placement: loss`` the policy loss is pg + β·masked_mean(kl(logp, ref)); with zero advantages its
    gradient is β·∂kl/∂logp / n_tokens on each token (k1: 1; k3: 1 − e^{ref − logp}). Mutation caught: the KL term
    detached (the loss would report a KL and train nothing against it)."""
    from blendrl.algorithms import ALGORITHMS
    from blendrl.config.schema import AlgorithmConfig, KLConfig

    algo = ALGORITHMS["reinforce"](AlgorithmConfig(name="reinforce"), KLConfig(placement="loss", kind=kind, coef=0.5),
                                   2)
    mb = cgpo_batch(2, 3)
    mb.response_mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])  # 5 tokens
    mb.ref_logp = torch.tensor([[-1.0, -2.0, -1.0], [-0.5, -1.5, -3.0]])
    mb.old_logp = torch.tensor([[-1.2, -1.7, -1.0], [-0.4, -1.6, -2.5]])
    mb.advantages = torch.zeros(2, 3)
    logp = mb.old_logp.clone().requires_grad_(True)
    loss, stats = algo.policy_loss(mb, logp, 0.5)
    loss.backward()
    d = 1.0 if kind == "k1" else 1.0 - torch.exp(mb.ref_logp - mb.old_logp)  # ∂kl/∂logp per token
    assert torch.allclose(logp.grad, 0.5 * d * mb.response_mask / 5, atol=1e-6)
    assert stats["loss/kl"] > 0 and logp.grad.abs().sum() > 0


def test_the_configured_clip_bounds_and_surrogate_reach_the_policy_loss():
    """clip_low/clip_high/dual_clip and policy_loss from the config are the ones the loss uses: one token with
    r = e^0.3 and A = 1 is capped at 1 + clip_high = 1.28 (1.2 under clip_eps alone); CISPO's gradient is the capped
    weight times A."""
    from blendrl.algorithms import ALGORITHMS
    from blendrl.config.schema import AlgorithmConfig, KLConfig

    mb = cgpo_batch(1, 1)
    mb.response_mask, mb.old_logp, mb.advantages = torch.ones(1, 1), torch.zeros(1, 1), torch.ones(1, 1)
    logp = torch.full((1, 1), 0.3)
    for cfg, want in ((AlgorithmConfig(name="reinforce"), -1.2),
                      (AlgorithmConfig(name="reinforce", clip_high=0.28), -1.28),
                      (AlgorithmConfig(name="reinforce", clip_low=0.28), -1.2)):
        loss, stats = ALGORITHMS["reinforce"](cfg, KLConfig(coef=0.0), 2).policy_loss(mb, logp, 0.0)
        assert loss.item() == pytest.approx(want) and stats["loss/clipfrac"] == 1.0
    cispo = ALGORITHMS["reinforce"](AlgorithmConfig(name="reinforce", policy_loss="cispo", clip_high=0.28),
                                    KLConfig(coef=0.0), 2)
    lp = logp.clone().requires_grad_(True)
    cispo.policy_loss(mb, lp, 0.0)[0].backward()
    assert lp.grad.item() == pytest.approx(-1.28)


def test_the_entropy_is_logged_and_its_bonus_pushes_the_entropy_up():
    """policy/entropy is the token mean of the entropy handed over; with entropy_coef 0.1 the loss is lower by
    0.1·mean(H) and the gradient through H is −0.1/n per token (here H is a leaf standing in for the forward's)."""
    from blendrl.algorithms import ALGORITHMS
    from blendrl.config.schema import AlgorithmConfig, KLConfig

    mb = cgpo_batch(1, 2)
    mb.response_mask, mb.old_logp, mb.advantages = torch.ones(1, 2), torch.zeros(1, 2), torch.zeros(1, 2)
    logp, ent = torch.zeros(1, 2), torch.tensor([[1.0, 3.0]], requires_grad=True)
    plain, stats = ALGORITHMS["reinforce"](AlgorithmConfig(name="reinforce"), KLConfig(coef=0.0), 2).policy_loss(
        mb, logp, 0.0, ent)
    assert stats["policy/entropy"] == pytest.approx(2.0) and plain.item() == pytest.approx(0.0)
    algo = ALGORITHMS["reinforce"](AlgorithmConfig(name="reinforce", entropy_coef=0.1), KLConfig(coef=0.0), 2)
    loss, stats = algo.policy_loss(mb, logp, 0.0, ent)
    assert loss.item() == pytest.approx(-0.2) and stats["loss/entropy_bonus"] == pytest.approx(0.2)
    loss.backward()
    assert torch.allclose(ent.grad, torch.tensor([[-0.05, -0.05]]))
