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
                          values=torch.zeros(1, 3))
    algo = ALGORITHMS["ppo"](AlgorithmConfig(gamma=1.0, lam=1.0, whiten_rewards=whiten_rewards), KLConfig(coef=0.1))
    algo.prepare(exp, 0.1)
    r = [-0.05, 0.02, -0.01 + 1.0]
    if whiten_rewards:
        mean = sum(r) / 3
        std = math.sqrt(sum((x - mean) ** 2 for x in r) / 3 + 1e-8)
        r = [mean + (x - mean) / std for x in r]  # TRL's whitening without the mean shift keeps the mean
    assert torch.allclose(exp.returns, torch.tensor([[r[0] + r[1] + r[2], r[1] + r[2], r[2]]]), atol=1e-5)
