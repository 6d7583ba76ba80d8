"""safe-rlhf's PPO-Lagrangian in ``blendrl ppo`` (docs/algorithms.md §16): the combined advantage, the dual step and
the KL's place on hand numbers; costs from judges and from a cost model; a tiny run where the constraint binds and
the cost falls back to its threshold while the same run with λ held at 0 does not; λ and the cost critic resume
exactly."""
import json

import pytest
import torch

from blendrl.config import ConfigError
from blendrl.functional import constrained_advantages
from tests.tiny import tiny_config

NO_YES = "[{kind: judge_violations, options: {judges: [{kind: format, name: no_yes, " \
         "options: {forbid: ['yes'], max_repetition: null}}]}}]"  # the reward (yes_share) wants what this forbids


def _algo(gae_lam: float = 1.0, **lagrangian):
    from blendrl.algorithms import ALGORITHMS
    from blendrl.config import AlgorithmConfig, KLConfig
    from blendrl.config.algorithm_schema import LagrangianConfig

    cfg = AlgorithmConfig(name="ppo-lagrangian", gamma=1.0, lam=gae_lam, whiten_advantages=False,
                          lagrangian=LagrangianConfig(**lagrangian))
    return ALGORITHMS["ppo-lagrangian"](cfg, KLConfig(coef=0.0))


def _exp(scores, costs, kl=None):
    """Two rows of two response tokens, critics at 0 (so GAE with γ = λ = 1 is the reward-to-go)."""
    from blendrl.training.experience import teacher_forced_experience

    exp = teacher_forced_experience([[1, 2]] * 2, [[3, 4]] * 2, 0, [True, True])
    exp.ref_logp = torch.zeros(2, 2) if kl is None else -kl  # k1: behaviour − ref = kl
    exp.values, exp.cost_values = torch.zeros(2, 2), torch.zeros(2, 2)
    exp.scores, exp.costs = torch.tensor(scores), torch.tensor(costs)
    return exp


def test_the_combined_advantage_by_hand():
    # λ = 1: ((1 − 0.5)/2, (−2 − 1)/2); λ = 0 is the reward's advantage itself
    a_r, a_c = torch.tensor([[1.0, -2.0]]), torch.tensor([[0.5, 1.0]])
    assert constrained_advantages(a_r, a_c, 1.0).tolist() == [[0.25, -1.5]]
    assert torch.equal(constrained_advantages(a_r, a_c, 0.0), a_r)


def test_the_advantages_use_lambda_after_this_batch_s_dual_step():
    """λ 0.5 + 1·(J_c 0.5 − d 0.2) = 0.8, then A = (A_r − 0.8·A_c)/1.8: row 0 (score 1, cost 1) 0.2/1.8 on both
    tokens, row 1 (0, 0) zero. Mutation caught: the advantages computed with λ from before its update (0.5/1.5)."""
    algo = _algo(threshold=0.2, lambda_init=0.5, lambda_lr=1.0)
    exp = _exp([1.0, 0.0], [1.0, 0.0])
    metrics = algo.prepare(exp, 0.0)
    assert algo.lam == pytest.approx(0.8) and metrics["lagrangian/lambda"] == pytest.approx(0.8)
    assert torch.allclose(exp.advantages, torch.tensor([[0.2 / 1.8] * 2, [0.0, 0.0]]))
    assert torch.equal(exp.returns, torch.tensor([[1.0, 1.0], [0.0, 0.0]]))
    assert torch.equal(exp.cost_returns, torch.tensor([[1.0, 1.0], [0.0, 0.0]]))


def test_lambda_stays_in_zero_to_lambda_max_and_rows_left_out_do_not_count():
    algo = _algo(threshold=0.5, lambda_init=0.1, lambda_lr=1.0, lambda_max=0.3)
    algo.prepare(_exp([0.0, 0.0], [0.0, 0.0]), 0.0)  # J_c 0 < d: 0.1 − 0.5 → 0
    assert algo.lam == 0.0
    algo.prepare(_exp([0.0, 0.0], [1.0, 1.0]), 0.0)  # 0 + 0.5 → capped at 0.3
    assert algo.lam == pytest.approx(0.3)
    exp = _exp([0.0, 0.0], [1.0, 0.0])
    exp.response_mask[0] = 0.0  # a row the update leaves out (NaN reward, a filter): J_c is row 1's, 0
    algo.prepare(exp, 0.0)
    assert algo.lam == 0.0


def test_the_kl_penalty_keeps_its_weight_whatever_lambda():
    """−β·kl in the reward and +β·kl in the cost: with no score and no cost the combined advantage is −β·Σ kl to go,
    for λ 0.8 as for PPO (hand numbers: β 0.5, kl (0.2, 0.4) → (−0.3, −0.2))."""
    from blendrl.algorithms import ALGORITHMS
    from blendrl.config import AlgorithmConfig, KLConfig

    kl = torch.tensor([[0.2, 0.4], [0.2, 0.4]])
    algo = _algo(threshold=0.0, lambda_init=0.8, lambda_lr=1e-9)
    exp = _exp([0.0, 0.0], [0.0, 0.0], kl)
    algo.prepare(exp, 0.5)
    assert torch.allclose(exp.advantages, torch.tensor([[-0.3, -0.2]] * 2))
    ppo = ALGORITHMS["ppo"](AlgorithmConfig(gamma=1.0, lam=1.0, whiten_advantages=False), KLConfig(coef=0.0))
    plain = _exp([0.0, 0.0], [0.0, 0.0], kl)
    ppo.prepare(plain, 0.5)
    assert torch.allclose(exp.advantages, plain.advantages)


def test_the_cost_critic_is_fit_to_the_cost_returns():
    """GAE λ 0.5 on the cost side uses the cost critic's values (0), not the reward critic's (0.5): row 1's cost
    2 on the last token gives A_c = (0.5·2, 2) and returns (1, 2); with the reward critic's values they would be
    (1.25, 2). Mutation caught: the cost GAE on exp.values."""
    algo = _algo(gae_lam=0.5)
    exp = _exp([1.0, 0.0], [0.0, 2.0])
    exp.values = torch.full((2, 2), 0.5)
    algo.prepare(exp, 0.0)
    assert torch.equal(exp.cost_returns, torch.tensor([[0.0, 0.0], [1.0, 2.0]]))
    loss, stats = algo.critic_loss(exp, torch.zeros(2, 2), "cost_critic")
    # value loss ½·mean((V − R_c)²) = ½·(0 + 0 + 1 + 4)/4 = 0.625, times vf_coef 0.1 (old values 0: no clip)
    assert stats == {"loss/cost_value": pytest.approx(0.625)} and loss.item() == pytest.approx(0.0625)
    exp.returns = torch.ones(2, 2)
    assert algo.critic_loss(exp, torch.zeros(2, 2))[1] == {"loss/value": pytest.approx(0.5)}


def test_judge_violations_counts_the_failed_judges():
    from blendrl.config import RewardSourceConfig
    from blendrl.core.types import Sample
    from blendrl.rewards.factory import build_source

    cfg = RewardSourceConfig(kind="judge_violations", options={"judges": [
        {"kind": "format", "name": "short", "options": {"max_words": 3}},
        {"kind": "format", "name": "no_cat", "options": {"forbid": ["cat"]}}]})
    samples = [Sample([{"role": "user", "content": "q"}], text) for text in ("a dog", "a big cat here", "cat")]
    scores = build_source(cfg).score(samples)
    assert scores.total.tolist() == [0.0, 2.0, 1.0]
    assert scores.components["short"].tolist() == [0.0, 1.0, 0.0]
    assert scores.components["no_cat"].tolist() == [0.0, 1.0, 1.0]


@pytest.mark.parametrize("overrides, message", [
    ({"algorithm.name": "ppo-lagrangian"}, r"^costs: ppo-lagrangian needs at least one cost source"),
    ({"costs": NO_YES}, r"^costs: only algorithm.name ppo-lagrangian reads them"),
    ({"algorithm.name": "ppo-lagrangian", "costs": "[{kind: judge_violations, options: {judges: []}}]"},
     r"^costs\[0\]\.options: a judge_violations source takes only 'judges', a non-empty list"),
    ({"algorithm.name": "ppo-lagrangian", "costs": "[{kind: judge_violations, options: {judges: [{kind: fromat}]}}]"},
     r"^costs\[0\]\.options\.judges\[0\]\.kind: unknown judge 'fromat'"),
    ({"algorithm.name": "ppo-lagrangian", "costs": "[{kind: judge_violations, options: {judges: [{kind: format, "
      "options: {forbid: [yes]}}]}}]"}, r"forbid must be a list of non-empty strings, got \[True\] \(quote YAML's"),
    ({"algorithm.lagrangian.lambda_lr": 0}, r"lambda_lr: must be > 0"),
])
def test_bad_lagrangian_configs_fail_before_any_model_loads(tiny_dir, tmp_path, overrides, message):
    from blendrl.training.names import check_names

    with pytest.raises(ConfigError, match=message):
        check_names(tiny_config(tiny_dir, tmp_path, **overrides))


def _costs(run_dir):
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(m["cost/mean"], m["lagrangian/lambda"]) for m in lines if "cost/mean" in m]


def test_the_constraint_binds_and_the_cost_falls_back_to_its_threshold(tiny_dir, tmp_path):
    """The reward wants 'yes'; the cost is a judge that forbids it, threshold 0.25. With λ held at 0 (PPO on the
    reward alone, the same seed) nearly every response ends up saying it; with dual ascent λ rises once the cost
    passes the threshold and the cost comes back under it."""
    from blendrl.training.run import run

    runs = {}
    for name, lam_max in (("constrained", "null"), ("lambda_0", 0.0)):
        run(tiny_config(tiny_dir, tmp_path / name, **{
            "algorithm.name": "ppo-lagrangian", "costs": NO_YES, "train.iterations": 40,
            "train.prompts_per_iteration": 8, "algorithm.lagrangian.threshold": 0.25,
            "algorithm.lagrangian.lambda_lr": 1.0, "algorithm.lagrangian.lambda_init": 0.0,
            "algorithm.lagrangian.lambda_max": lam_max, "data.eval_prompts": "null", "logging.save_every": 0}))
        runs[name] = _costs(tmp_path / name)
    free = [c for c, _ in runs["lambda_0"]]
    cost, lam = zip(*runs["constrained"])
    assert sum(free[-10:]) / 10 > 0.8, free
    assert max(lam) > 0.3 and all(x == 0.0 for x in lam[:5]), lam  # a price only once the constraint is violated
    smooth = [sum(cost[i:i + 5]) / 5 for i in range(len(cost) - 4)]  # 5-iteration means
    over = next(i for i, c in enumerate(smooth) if c > 0.25)  # the first time the constraint is violated ...
    assert min(smooth[over:]) < 0.2, cost  # ... the price brings the cost back under the threshold
    assert sum(cost[10:]) / 30 < 0.3, cost  # held near it from then on


def test_costs_from_a_cost_model_and_exact_resume_of_lambda_and_the_cost_critic(tiny_dir, tmp_path):
    """``costs: [{kind: hf_rm}]`` (a sequence-classification cost model) beside a judge; a run stopped after 2 of 4
    iterations and resumed ends with the straight run's λ, policy and cost critic, and every checkpoint holds a
    cost critic that plain transformers loads."""
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer

    from blendrl.training.run import run

    cm = tmp_path / "cost_model"
    AutoModelForSequenceClassification.from_pretrained(tiny_dir, num_labels=1).save_pretrained(cm)
    AutoTokenizer.from_pretrained(tiny_dir).save_pretrained(cm)
    costs = f"[{{kind: hf_rm, name: cost_model, path: '{cm}'}}, {NO_YES[1:-1]}]"
    sets = {"algorithm.name": "ppo-lagrangian", "costs": costs, "train.iterations": 4, "data.eval_prompts": "null",
            "algorithm.lagrangian.lambda_lr": 0.5, "critic.cost_path": str(cm)}
    straight = run(tiny_config(tiny_dir, tmp_path / "a", **sets))["trainer"]
    run(tiny_config(tiny_dir, tmp_path / "b", **sets, **{"logging.save_every": 2}), stop_after=2)
    resumed = run(tiny_config(tiny_dir, tmp_path / "b", **sets), resume=str(tmp_path / "b"))["trainer"]
    assert resumed.algorithm.lam == straight.algorithm.lam != 1.0
    for name in ("policy", "cost_critic", "critic"):
        a, b = getattr(straight.m, name).state_dict(), getattr(resumed.m, name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    lines = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    m = [x for x in lines if "cost/mean" in x][-1]
    assert m["cost/mean"] == pytest.approx(m["cost/cost_model"] + m["cost/judge_violations"], abs=1e-5)
    assert "cost/judge_violations/no_yes" in m and "loss/cost_value" in m and "grad_norm/cost_critic" in m
    head = AutoModelForTokenClassification.from_pretrained(tmp_path / "a" / "checkpoints" / "iter-000004" /
                                                           "cost_critic")
    assert head.config.num_labels == 1


def test_the_held_out_evaluation_reports_the_cost_of_its_own_responses(tiny_dir, tmp_path):
    from blendrl.core.types import Sample
    from blendrl.judges import build_judges
    from blendrl.config.cgpo_schema import JudgeConfig
    from blendrl.training.run import build_trainer

    trainer = build_trainer(tiny_config(tiny_dir, tmp_path, **{"algorithm.name": "ppo-lagrangian", "costs": NO_YES,
                                                               "generation.max_new_tokens": 16}))
    out = trainer.evaluate(8)
    judge = build_judges([JudgeConfig(kind="format", options={"forbid": ["yes"], "max_repetition": None})])
    failed = ~judge.evaluate([Sample([], r["response"]) for r in out.samples]).passed
    assert out.metrics["eval/cost/mean"] == pytest.approx(failed.float().mean().item())
    assert 0 < failed.sum() < len(failed)  # the check is not vacuous: some responses say 'yes', some do not


def nan_cost(prompt: str, response: str, metadata: dict) -> float:
    """A cost source that cannot price a response of 8 words or more (NaN)."""
    return float("nan") if len(response.split()) >= 8 else 1.0


def _capture_prepare(trainer) -> list:
    """The Experience each iteration's advantages were computed on."""
    seen, prepare = [], trainer.algorithm.prepare

    def spy(exp, kl_coef):
        seen.append(exp)
        return prepare(exp, kl_coef)

    trainer.algorithm.prepare = spy
    return seen


def test_a_row_whose_cost_is_nan_leaves_the_update_and_is_counted(tiny_dir, tmp_path):
    import dataclasses

    from blendrl.training.run import build_trainer

    trainer = build_trainer(tiny_config(tiny_dir, tmp_path, **{
        "algorithm.name": "ppo-lagrangian", "costs": "[{kind: callable, name: 'tests.test_ppo_lagrangian:nan_cost'}]",
        "data.eval_prompts": "null"}))
    seen = _capture_prepare(trainer)
    m = trainer.step().metrics
    exp = seen[0]
    sampled = dataclasses.replace(exp, response_mask=exp.attention_mask[:, exp.prompt_len:].float())  # unmasked
    words = [len(r.split()) for r in trainer.decode(sampled)]
    unpriced = torch.tensor([w >= 8 for w in words])
    assert 0 < unpriced.sum() < len(words), words  # both kinds of row are in the batch
    assert (exp.response_mask[unpriced].sum(1) == 0).all() and (exp.response_mask[~unpriced].sum(1) > 0).all()
    assert m["skipped/samples_total"] == unpriced.sum().item() and m["cost/mean"] == 1.0
    assert torch.isfinite(exp.costs).all()


def test_the_cost_critic_starts_from_cost_path_is_trained_and_its_values_are_its_own(tiny_dir, tmp_path):
    """Its values (the cost GAE's baseline) come from the cost critic's forward, not the reward critic's; it
    starts from ``critic.cost_path`` (another model here) and its weights move."""
    import copy

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from blendrl.training.experience import response_values
    from blendrl.training.run import build_trainer
    from tests.tiny import save_tiny

    other = save_tiny(tmp_path / "other", seed=7)
    cm = tmp_path / "cost_model"
    AutoModelForSequenceClassification.from_pretrained(other, num_labels=1).save_pretrained(cm)
    AutoTokenizer.from_pretrained(other).save_pretrained(cm)
    trainer = build_trainer(tiny_config(tiny_dir, tmp_path / "run", **{
        "algorithm.name": "ppo-lagrangian", "costs": NO_YES, "critic.cost_path": str(cm), "data.eval_prompts": "null",
        "train.micro_batch_size": 2}))  # smaller than the batch: the values come from a no-grad pass
    ref = AutoModelForSequenceClassification.from_pretrained(cm).state_dict()
    start = trainer.m.cost_critic.state_dict()
    shared = [k for k in start if k in ref and "embed" in k]
    assert shared and all(torch.equal(start[k], ref[k]) for k in shared)
    assert not torch.equal(start[shared[0]], trainer.m.critic.state_dict()[shared[0]])
    before = copy.deepcopy(trainer.m.cost_critic)
    seen = _capture_prepare(trainer)
    trainer.step()
    exp = seen[0]
    with torch.no_grad():
        own = response_values(before, exp) * exp.response_mask
    assert torch.allclose(exp.cost_values * exp.response_mask, own, atol=1e-5)
    after = trainer.m.cost_critic.state_dict()
    assert any(not torch.equal(after[k], before.state_dict()[k]) for k in after)
