"""Reward-model ensembles (mean / WCO / UWO) as a reward source, and best-of-n with the unbiased estimator."""
import itertools
import json
import math

import pytest
import torch

from blendrl.config import ConfigError, RewardSourceConfig, from_dict
from blendrl.eval.best_of_n import best_of_n, bon_weights, kl_bon
from blendrl.functional.ensembles import ENSEMBLE_AGGREGATORS, disagreement
from blendrl.rewards import CallableReward, Sample, WeightedSum
from blendrl.rewards.ensemble import EnsembleReward

SCORES = torch.tensor([[1.0, 0.0], [3.0, 0.0], [2.0, 3.0]])  # k=3 members, B=2 sequences


def test_aggregators_on_hand_computed_values():
    assert ENSEMBLE_AGGREGATORS["mean"](SCORES).tolist() == [2.0, 1.0]
    assert ENSEMBLE_AGGREGATORS["wco"](SCORES).tolist() == [1.0, 0.0]
    # population variances: [(1+1+0)/3, (1+1+4)/3] = [2/3, 2]; λ = 0.5
    assert ENSEMBLE_AGGREGATORS["uwo"](SCORES, lam=0.5).tolist() == pytest.approx([2 - 1 / 3, 1 - 1.0])
    assert disagreement(SCORES).tolist() == pytest.approx([math.sqrt(2 / 3), math.sqrt(2)])


def test_ensemble_source_aggregates_members_and_exposes_disagreement_to_the_log():
    members = [CallableReward(lambda p, r, m, k=k: float(SCORES[k, int(r)]), f"m{k}") for k in range(3)]
    ens = EnsembleReward(members, "wco", name="ens")
    samples = [Sample([{"role": "user", "content": "q"}], str(i)) for i in range(2)]
    total = WeightedSum([ens], [1.0])
    got = total.score(samples)
    assert got.total.tolist() == [1.0, 0.0]
    assert set(got.components) == {"ens"}
    assert set(got.stats) == {"ens/disagreement", "ens/member0", "ens/member1", "ens/member2"}


def test_ensemble_config_needs_members():
    from blendrl.config import PPORunConfig
    from blendrl.training.names import check_names

    cfg = from_dict(PPORunConfig, {"rewards": [{"kind": "ensemble", "options": {"members": ["a"]}}]})
    with pytest.raises(ConfigError, match=r"rewards\[0\]\.options\.members: an ensemble needs a list of at least 2"):
        check_names(cfg)


@pytest.mark.parametrize("N, n", [(5, 1), (5, 2), (6, 3), (6, 6), (7, 4)])
def test_unbiased_best_of_n_matches_brute_force_enumeration(N, n):
    g = torch.Generator().manual_seed(N * 10 + n)
    proxy, gold = torch.randn(N, generator=g), torch.randn(N, generator=g)
    subsets = list(itertools.combinations(range(N), n))
    picks = [max(s, key=lambda i: proxy[i].item()) for s in subsets]
    want_proxy = sum(proxy[i].item() for i in picks) / len(subsets)
    want_gold = sum(gold[i].item() for i in picks) / len(subsets)
    got_proxy, got_gold = best_of_n(proxy, gold, n)
    assert got_proxy == pytest.approx(want_proxy) and got_gold == pytest.approx(want_gold)
    assert float(bon_weights(N, n).sum()) == pytest.approx(1.0)


def test_kl_bon_is_log_n_minus_n_minus_one_over_n():
    assert kl_bon(1) == 0.0
    assert kl_bon(4) == pytest.approx(math.log(4) - 0.75)
    assert kl_bon(12500) == pytest.approx(8.43, abs=0.01)  # Coste et al.'s largest n ≈ 8.4 nats
    with pytest.raises(ValueError, match="1 <= n <= N"):
        bon_weights(3, 4)


def _train_tiny_rms(rm_tiny_dir, tmp_path, seeds):
    from blendrl.data.preferences import write_preferences
    from blendrl.data.synthetic import make_pairs
    from blendrl.training.rm import run as rm_run
    from tests.test_reward_model import rm_config

    write_preferences(make_pairs(64, seed=0), tmp_path / "p.jsonl")
    return [str(rm_run.train_rm(rm_config(rm_tiny_dir, tmp_path / f"rm{s}", tmp_path / "p.jsonl",
                                          **{"train.seed": s}))["final"]) for s in seeds]


def test_ensemble_of_trained_rms_drives_ppo_and_bon_reports_the_estimator(tiny_dir, rm_tiny_dir, tmp_path):
    from blendrl.cli.main import main
    from blendrl.training.run import run
    from tests.tiny import tiny_config

    folders = _train_tiny_rms(rm_tiny_dir, tmp_path, [0, 1])
    cfg = tiny_config(tiny_dir, tmp_path / "ppo", **{"train.iterations": 2})
    cfg.rewards = [from_dict(RewardSourceConfig, {"kind": "ensemble", "name": "ens",
                                                  "options": {"members": folders, "aggregate": "uwo", "lam": 0.1}})]
    res = run(cfg)
    metrics = [json.loads(line) for line in (tmp_path / "ppo" / "metrics.jsonl").read_text().splitlines()]
    assert any("reward/ens/disagreement" in m for m in metrics)
    assert math.isfinite(res["after"].metrics["eval/reward/mean"])
    out = tmp_path / "bon"
    argv = ["bon", "--set", f"model.name={tiny_dir}", "--set", "generation.max_new_tokens=6", "--set", "bon.pool=6",
            "--set", "bon.prompts=3", "--set", f"logging.output_dir={out}",
            "--set", "data.prompts=builtin:concise_eval",
            "--set", f"rewards=[{{kind: hf_rm, path: {folders[0]}}}]",
            "--set", "gold=[{kind: callable, name: 'tests.tiny:yes_share'}]"]
    assert main(argv) == 0
    table = json.loads((out / "bon.json").read_text())["table"]
    assert [r["n"] for r in table] == [1, 2, 4, 6]
    assert table[-1]["proxy"] >= table[0]["proxy"]  # best-of-n by proxy never lowers the expected proxy score
    assert len((out / "picks.jsonl").read_text().splitlines()) == 3
