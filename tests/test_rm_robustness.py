"""Reward-model robustness (issue #30): every recipe as flip × smoothing × margin, the confident flip rule, the
scale-free margin, temperature calibration folded into the saved head, and the noisy-preference generators."""
import json
import math

import pytest
import torch

from blendrl.config.rm_schema import RMLossConfig
from blendrl.data import DataError
from blendrl.data.pair_encoding import encode_pairs
from blendrl.data.preferences import load_preferences, write_preferences
from blendrl.functional.rm_losses import denoised_pair_loss, fit_temperature, flip_confident
from blendrl.training.rm.recipes import RECIPES, prepare_pairs
from tests.tiny import build_tokenizer

t = torch.tensor
lsig = torch.nn.functional.logsigmoid


def test_denoised_pair_loss_on_hand_numbers():
    # Δ = [2, −1]; m = [1, 0]; a = [0, 0.2] → z = [1, −1]; ℓ = [−log σ(1), −(0.8 log σ(−1) + 0.2 log σ(1))]
    loss = denoised_pair_loss(t([2.0, 0.0]), t([0.0, 1.0]), t([1.0, 0.0]), t([0.0, 0.2]))
    s1, sm1 = math.log(1 / (1 + math.exp(-1))), math.log(1 / (1 + math.exp(1)))
    assert loss.item() == pytest.approx((-s1 - (0.8 * sm1 + 0.2 * s1)) / 2)


def test_every_combination_of_flip_smoothing_and_margin_is_a_recipe():
    parts = {name: (r.flip, r.smoothing, r.margin) for name, r in ((n, RECIPES[n]) for n in RECIPES.names())}
    assert len(set(parts.values())) == 12
    assert parts["bt"] == (False, "none", False) and parts["flip_margin"] == (True, "none", True)
    assert parts["soft_label_margin"] == (False, "negative", True)
    assert parts["flip_label_smoothing"] == (True, "all", False)
    assert not RECIPES["bt"].needs_mu and not RECIPES["label_smoothing"].needs_mu and RECIPES["soft_label"].needs_mu


def test_smoothing_only_where_mu_is_negative_without_margin():
    cfg = RMLossConfig(alpha=0.2, margin=0.5)
    c, r, mu = t([1.0, 1.0]), t([0.0, 0.0]), t([2.0, -1.0])
    # soft_label: fixed margin 0.5 → z = [0.5, 0.5]; smoothing 0.2 only on pair 2
    z = torch.tensor(0.5)
    want = (-lsig(z) - (0.8 * lsig(z) + 0.2 * lsig(-z))) / 2
    assert RECIPES["soft_label"].loss_fn(cfg)(c, r, mu).item() == pytest.approx(want.item())


def test_flip_confident_flips_where_the_ensemble_agrees_the_label_is_wrong():
    mu, sigma = t([-2.0, -0.5, 0.3, -1.0, -0.1]), t([1.0, 1.0, 0.1, 0.5, 0.0])
    assert flip_confident(mu, sigma, 1.0).tolist() == [True, False, False, True, True]
    assert flip_confident(mu, sigma, 0.0).tolist() == [True, True, False, True, True]  # z = 0: every μ̂ < 0


def _encoded(tmp_path, mus, sigmas=None):
    rows = [{"prompt": "q", "chosen": f"a{i}", "rejected": f"b{i}", "mu": m, **({"sigma": sigmas[i]} if sigmas else {})}
            for i, m in enumerate(mus)]
    write_preferences(rows, tmp_path / "p.jsonl")
    return encode_pairs(load_preferences(str(tmp_path / "p.jsonl")), build_tokenizer(), 64)


def test_confident_rule_and_scale_free_margin_in_prepare_pairs(tmp_path):
    enc = _encoded(tmp_path, [0.5, -2.0, 1.0, -0.4, 4.5], [0.2, 0.5, 0.1, 1.0, 0.3])
    # flip_fraction 0.4 would swap −2.0 and −0.4: the confident rule ignores it
    cfg = RMLossConfig(flip_rule="confident", flip_z=1.0, flip_fraction=0.4, margin_unit="mean_abs", margin_scale=0.5)
    out, mu, flipped = prepare_pairs(enc, "flip_margin", cfg)
    assert flipped.tolist() == [False, True, False, False, False]  # −0.4 is above −1·σ̂ = −1.0: kept
    # mean |μ̂| = (0.5 + 2 + 1 + 0.4 + 4.5)/5 = 1.68; m = 0.5·μ̂/1.68, sign flipped for the swapped pair
    assert mu.tolist() == pytest.approx([0.5 * v / 1.68 for v in [0.5, 2.0, 1.0, -0.4, 4.5]])
    assert out.chosen[1] == enc.rejected[1]
    with pytest.raises(DataError, match=r"row 1, field 'sigma': missing; loss.flip_rule confident"):
        prepare_pairs(_encoded(tmp_path, [0.5, -1.0]), "flip", cfg)


def test_fit_temperature_matches_the_closed_form():
    # 8 pairs ranked right by Δ = 2, 2 ranked wrong: the NLL is minimal where σ(2/T) = 0.8 → T = 2/logit(0.8)
    delta = t([2.0] * 8 + [-2.0] * 2)
    assert fit_temperature(delta) == pytest.approx(2 / math.log(4), rel=1e-6)
    assert fit_temperature(3 * delta) == pytest.approx(6 / math.log(4), rel=1e-6)  # scale in, scale out
    with pytest.raises(ValueError, match="all ranked one way"):
        fit_temperature(t([1.0, 2.0]))


def test_generators_have_their_own_shapes_and_near_tie_noise_flips_close_pairs_more():
    from blendrl.data.synthetic import ALL_VOCABULARY, GENERATORS, arithmetic_score, bag_of_words_score, make_pairs

    assert arithmetic_score(12, "sure , the answer is 12 .".split()) == pytest.approx(1.5 + 0.2 + 0.2)
    assert arithmetic_score(12, "maybe it is 13 or 5".split()) == pytest.approx(0.3 - 0.5 - 0.4)
    # one word: w − 0.05·(1 − 8)²; eight copies of it: w/√8 (one distinct word, no length cost)
    assert bag_of_words_score(["alpha"] * 8) == pytest.approx((bag_of_words_score(["alpha"]) + 0.05 * 49) / 8 ** 0.5)
    for g in GENERATORS:
        rows = make_pairs(400, seed=3, noise=0.25, generator=g, noise_kind="near_tie")
        assert all(set((r["prompt"] + " " + r["chosen"] + " " + r["rejected"]).split()) <= set(ALL_VOCABULARY)
                   for r in rows)
        flipped = [r["true_margin"] for r in rows if r["flipped"]]
        kept = [r["true_margin"] for r in rows if not r["flipped"]]
        assert 0.18 < len(flipped) / len(rows) < 0.32, g  # the rate is matched on average
        assert sum(flipped) / len(flipped) < 0.8 * sum(kept) / len(kept), g  # near-ties flip more
        uniform = make_pairs(400, seed=3, noise=0.25, generator=g)
        assert sum(r["flipped"] for r in uniform) == 100
    with pytest.raises(ValueError, match="generator in"):
        make_pairs(4, generator="nope")


def test_cross_fitted_strength_comes_only_from_models_that_did_not_train_on_the_pair(rm_tiny_dir, tmp_path,
                                                                                     monkeypatch):
    from blendrl.data.synthetic import make_pairs
    from blendrl.training.rm import run as rm_run
    from tests.test_reward_model import rm_config

    write_preferences(make_pairs(40, seed=2, noise=0.25), tmp_path / "p.jsonl")
    seen, diffs = [], []
    real_init, real_score = rm_run.RMTrainer.__init__, rm_run.RMTrainer.score_pairs

    def init(self, cfg, model, tokenizer, train, **kw):
        seen.append({p.where for p in train.pairs})
        real_init(self, cfg, model, tokenizer, train, **kw)

    def score(self, enc):
        c, r = real_score(self, enc)
        diffs.append(c - r)
        return c, r

    monkeypatch.setattr(rm_run.RMTrainer, "__init__", init)
    monkeypatch.setattr(rm_run.RMTrainer, "score_pairs", score)
    res = rm_run.strength(rm_config(rm_tiny_dir, tmp_path, tmp_path / "p.jsonl", **{
        "strength.models": 4, "strength.folds": 2, "model.trainable": "head", "train.epochs": 3,
        "strength.output": str(tmp_path / "s.jsonl")}))
    folds = rm_run.pair_folds(40, 2, 0)
    assert sorted(folds.bincount().tolist()) == [20, 20]
    rows = load_preferences(str(tmp_path / "s.jsonl"))
    for m in range(4):  # model m trained exactly on the pairs outside fold m mod 2
        assert seen[m] == {rows[i].where.replace("s.jsonl", "p.jsonl") for i in range(40) if folds[i] != m % 2}
    d = torch.stack(diffs)
    for i in (0, 7, 31):
        f = int(folds[i])
        held = d[[f, f + 2], i]  # the two models that held pair i out
        assert res["mu"][i].item() == pytest.approx(held.mean().item(), abs=1e-6)
        assert res["sigma"][i].item() == pytest.approx(held.std(unbiased=False).item(), abs=1e-6)


def test_calibration_folds_the_temperature_into_the_saved_head(rm_tiny_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification

    from blendrl.data.synthetic import make_pairs
    from blendrl.training.rm import run as rm_run
    from blendrl.training.rm.trainer import ModelScorer
    from tests.test_reward_model import rm_config

    for name, n, seed in (("train", 200, 0), ("cal", 60, 1), ("held", 60, 2)):
        write_preferences(make_pairs(n, seed=seed, noise=0.25 if name == "train" else 0.0), tmp_path / f"{name}.jsonl")
    base = rm_config(rm_tiny_dir, tmp_path / "plain", tmp_path / "train.jsonl",
                     **{"data.eval": str(tmp_path / "held.jsonl"), "train.epochs": 3})
    plain = rm_run.train_rm(base)
    cal = rm_run.train_rm(rm_config(rm_tiny_dir, tmp_path / "cal", tmp_path / "train.jsonl", **{
        "data.eval": str(tmp_path / "held.jsonl"), "train.epochs": 3, "data.calibration": str(tmp_path / "cal.jsonl")}))
    temp = cal["temperature"]
    # the same training run, then the head divided by T: plain transformers scores are the uncalibrated ones / T
    enc = cal["trainer"].pairs
    loaded = AutoModelForSequenceClassification.from_pretrained(cal["final"]).eval()
    before = ModelScorer(AutoModelForSequenceClassification.from_pretrained(plain["final"]).eval(), 0)
    assert torch.allclose(ModelScorer(loaded, 0).score(enc.chosen[:6]), before.score(enc.chosen[:6]) / temp, atol=1e-5)
    # T is the NLL optimum on the calibration pairs, and eval.json carries both ECEs
    c_pairs = rm_run.load_pairs(str(tmp_path / "cal.jsonl"), cal["trainer"].tokenizer, base)
    delta = before.score(c_pairs.chosen) - before.score(c_pairs.rejected)
    assert temp == pytest.approx(fit_temperature(delta), rel=1e-4)
    ev = json.loads((tmp_path / "cal" / "eval.json").read_text())
    assert ev["temperature"] == temp and ev["ece_before_calibration"] == pytest.approx(plain["eval"]["ece"], abs=1e-6)
    assert ev["accuracy"] == plain["eval"]["accuracy"]  # a positive scale never changes a ranking
    assert json.loads((cal["final"] / "calibration.json").read_text())["temperature"] == temp


def test_sinkhorn_codes_and_swav_loss_on_hand_numbers():
    from blendrl.functional.rm_losses import sinkhorn_codes, swav_loss

    q = sinkhorn_codes(torch.randn(6, 3, generator=torch.Generator().manual_seed(0)))
    assert torch.allclose(q.sum(1), torch.ones(6))  # each sample's code is a distribution
    # two samples on two orthogonal prototypes, ε = τ = 1: Q ∝ exp(I) is symmetric, so each code is
    # [a, 1 − a] with a = e/(1 + e); each view's log-softmax of [1, 0] is [−log(1 + e⁻¹), −1 − log(1 + e⁻¹)]
    a = math.e / (1 + math.e)
    want = math.log(1 + math.exp(-1)) + (1 - a)
    got = swav_loss(torch.eye(2), 3 * torch.eye(2), torch.eye(2), tau=1.0, eps=1.0)  # views are L2-normalised
    assert got.item() == pytest.approx(want, rel=1e-6)
    assert sinkhorn_codes(torch.eye(2), eps=1.0)[0, 0].item() == pytest.approx(a, rel=1e-6)


def test_swav_trains_its_prototypes_with_the_reward_model_and_resumes_them(rm_tiny_dir, tmp_path):
    from blendrl.data.synthetic import make_pairs
    from blendrl.training.rm import run as rm_run
    from tests.test_reward_model import rm_config

    write_preferences(make_pairs(64, seed=5), tmp_path / "p.jsonl")
    sets = {"contrastive.kind": "swav", "contrastive.prototypes": 8, "contrastive.beta": 0.5, "contrastive.tau": 0.1,
            "model.dropout": 0.1, "train.epochs": 2, "logging.save_every": 1}
    full = rm_run.train_rm(rm_config(rm_tiny_dir, tmp_path / "a", tmp_path / "p.jsonl", **sets))
    trainer = full["trainer"]
    start = torch.randn(8, trainer.model.config.hidden_size, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(trainer.prototypes.weight, start)  # the prototypes learned
    m = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert all(r["loss/total"] == pytest.approx(r["loss/rm"] + 0.5 * r["loss/contrastive"], rel=1e-5) for r in m)
    rm_run.train_rm(rm_config(rm_tiny_dir, tmp_path / "b", tmp_path / "p.jsonl", **sets), stop_after=3)
    resumed = rm_run.train_rm(rm_config(rm_tiny_dir, tmp_path / "b", tmp_path / "p.jsonl", **sets),
                              resume=str(tmp_path / "b"))["trainer"]
    assert torch.equal(resumed.prototypes.weight, trainer.prototypes.weight)
    a, b = trainer.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
