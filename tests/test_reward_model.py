"""The reward-model trainer on tiny models: recipes, contrastive views, MetaRM, strength, eval, save/load, resume,
the CLI, and a trained folder as a reward source in `blendrl ppo`."""
import json
import math

import pytest
import torch
import yaml

from blendrl.config import ConfigError, load_config
from blendrl.config.rm_schema import RMLossConfig, RMRunConfig
from blendrl.data import DataError
from blendrl.data.pair_encoding import encode_pairs
from blendrl.data.preferences import load_preferences, write_preferences
from blendrl.data.synthetic import make_pairs
from blendrl.eval.rm_eval import decile_ids, pair_metrics
from blendrl.training.rm import run as rm_run
from blendrl.training.rm.recipes import RECIPES, prepare_pairs
from blendrl.training.rm.trainer import contrastive_views


def rm_config(model_dir, out_dir, train, **overrides) -> RMRunConfig:
    sets = {"model.name": str(model_dir), "data.train": str(train), "data.eval": None, "train.lr": 3e-3,
            "train.batch_size": 16, "train.micro_batch_size": 8, "train.schedule": "constant",
            "logging.output_dir": str(out_dir), "logging.tensorboard": False, "logging.progress": False,
            **overrides}
    return load_config(RMRunConfig, None, [f"{k}={'null' if v is None else v}" for k, v in sets.items()])


@pytest.fixture
def prefs(tmp_path):
    path = tmp_path / "train.jsonl"
    write_preferences(make_pairs(96, seed=5), path)
    return path


def test_recipe_losses_bind_their_options_and_match_hand_values():
    c, r, mu = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 1.0]), torch.tensor([1.0, -1.0])
    cfg = RMRunConfig().loss
    cfg.margin, cfg.alpha = 1.0, 0.2
    lsig = torch.nn.functional.logsigmoid
    # bt with margin 1: Δ − 1 = [1, −2]
    assert RECIPES["bt"].loss_fn(cfg)(c, r).item() == pytest.approx(-(lsig(torch.tensor(1.0)) + lsig(torch.tensor(
        -2.0))).item() / 2)
    # soft label + margin: z = Δ − μ̂ = [1, 0]; smoothing α only on the μ̂ < 0 pair
    want = -(lsig(torch.tensor(1.0)) + 0.8 * math.log(0.5) + 0.2 * math.log(0.5)) / 2
    assert RECIPES["soft_label_margin"].loss_fn(cfg)(c, r, mu).item() == pytest.approx(want)


def test_flip_recipe_swaps_lowest_mu_pairs_and_negates_their_mu(tmp_path):
    from tests.tiny import build_tokenizer

    rows = [{"prompt": "q", "chosen": f"a{i}", "rejected": f"b{i}", "mu": m} for i, m in enumerate([0.5, -2, 1, -1, 3])]
    write_preferences(rows, tmp_path / "p.jsonl")
    enc = encode_pairs(load_preferences(str(tmp_path / "p.jsonl")), build_tokenizer(), 64)
    out, mu, flipped = prepare_pairs(enc, "flip_margin", RMLossConfig(flip_fraction=0.4))
    assert flipped.tolist() == [False, True, False, True, False]
    assert mu.tolist() == [0.5, 2.0, 1.0, 1.0, 3.0]
    assert out.chosen[1] == enc.rejected[1] and out.rejected[1] == enc.chosen[1] and out.chosen[0] == enc.chosen[0]


def test_recipes_that_need_strength_name_the_row_without_mu(rm_tiny_dir, tmp_path, prefs):
    with pytest.raises(DataError, match=r"train.jsonl, row 1, field 'mu': missing; loss.recipe 'margin'"):
        rm_run.build_rm_trainer(rm_config(rm_tiny_dir, tmp_path, prefs, **{"loss.recipe": "margin"}))


def test_contrastive_needs_dropout_and_a_trainable_backbone():
    with pytest.raises(ConfigError, match="model.dropout: must be > 0"):
        load_config(RMRunConfig, None, ["contrastive.kind=simcse"])
    with pytest.raises(ConfigError, match="contrastive.kind: needs a trainable backbone"):
        load_config(RMRunConfig, None, ["contrastive.kind=simcse", "model.dropout=0.1", "model.trainable=head"])


def test_contrastive_views_are_pairs_or_differences():
    h = torch.tensor([[1.0, 0.0], [2.0, 2.0], [0.0, 1.0], [1.0, 1.0]])  # chosen rows 0-1, rejected rows 2-3
    assert torch.equal(contrastive_views(h, 2, "pairs"), h)
    assert contrastive_views(h, 2, "difference").tolist() == [[1, -1], [1, 1], [-1, 1], [-1, -1]]


def test_reward_model_learns_the_synthetic_preference_and_round_trips_through_transformers(rm_tiny_dir,
                                                                                             tmp_path):
    from transformers import AutoModelForSequenceClassification

    from blendrl.rewards import HFRewardModel, Sample

    train, held = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    write_preferences(make_pairs(1200, seed=0), train)
    write_preferences(make_pairs(300, seed=1), held)
    res = rm_run.train_rm(rm_config(rm_tiny_dir, tmp_path / "run", train, **{"data.eval": held, "train.epochs": 2,
                                                                             "train.batch_size": 32}))
    assert res["eval"]["accuracy"] > 0.65, res["eval"]["accuracy"]
    assert (tmp_path / "run" / "calibration.png").stat().st_size > 1000
    # plain transformers loads the folder; blendrl's hf_rm source gives the trainer's scores
    plain = AutoModelForSequenceClassification.from_pretrained(res["final"])
    trained = res["trainer"].model
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), trained.state_dict().values()))
    pairs = res["trainer"].pairs
    rm = HFRewardModel(str(res["final"]))
    got = rm.score([Sample(p.prompt, p.chosen, {}, "") for p in pairs.pairs[:8]]).total
    want = res["trainer"].scorer.score(pairs.chosen[:8])
    assert torch.allclose(got, want, atol=1e-5)


def test_resume_continues_exactly(rm_tiny_dir, tmp_path, prefs):
    overrides = {"train.epochs": 2, "logging.save_every": 1, "model.dropout": 0.1}
    full = rm_run.train_rm(rm_config(rm_tiny_dir, tmp_path / "a", prefs, **overrides))
    rm_run.train_rm(rm_config(rm_tiny_dir, tmp_path / "b", prefs, **overrides), stop_after=5)
    resumed = rm_run.train_rm(rm_config(rm_tiny_dir, tmp_path / "b", prefs, **overrides),
                              resume=str(tmp_path / "b"))
    assert resumed["steps_run"] == full["steps_run"] - 5
    a, b = full["trainer"].model.state_dict(), resumed["trainer"].model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_head_only_training_leaves_the_backbone_unchanged(rm_tiny_dir, tmp_path, prefs):
    cfg = rm_config(rm_tiny_dir, tmp_path, prefs, **{"model.trainable": "head"})
    trainer = rm_run.build_rm_trainer(cfg)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    while not trainer.done:
        trainer.train_step()
    changed = [k for k, v in trainer.model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed == ["score.weight"]


def test_lora_reward_model_saves_merged_and_loads_in_transformers(rm_tiny_dir, tmp_path, prefs):
    from transformers import AutoModelForSequenceClassification

    res = rm_run.train_rm(rm_config(rm_tiny_dir, tmp_path, prefs, **{"model.trainable": "lora", "model.lora.r": 4,
                                                                  "model.lora.target_modules": "[q_proj, v_proj]"}))
    plain = AutoModelForSequenceClassification.from_pretrained(res["final"]).eval()
    enc = res["trainer"].pairs
    from blendrl.training.rm.trainer import ModelScorer

    assert torch.allclose(ModelScorer(plain, 0).score(enc.chosen[:4]), res["trainer"].scorer.score(enc.chosen[:4]),
                          atol=1e-5)


@pytest.mark.parametrize("beta", [1.0, 0.25])
def test_simcse_term_is_logged_and_weighted_by_beta(rm_tiny_dir, tmp_path, prefs, beta):
    """L = L_rm + β·L_cl. β = 0.25 as well as the default 1: a loss that drops β passes only at β = 1."""
    cfg = rm_config(rm_tiny_dir, tmp_path, prefs, **{"contrastive.kind": "simcse", "model.dropout": 0.1,
                                                     "contrastive.beta": beta})
    trainer = rm_run.build_rm_trainer(cfg)
    m = trainer.train_step()
    assert m["loss/contrastive"] > 0
    assert m["loss/total"] == pytest.approx(m["loss/rm"] + beta * m["loss/contrastive"], rel=1e-5)


def test_metarm_gradient_is_taken_at_the_ascended_point_and_theta_is_restored(rm_tiny_dir, tmp_path, prefs):
    from blendrl.functional.rm_losses import metarm_difference_loss
    from blendrl.training.rm.metarm import MetaRMTrainer

    meta = tmp_path / "meta.jsonl"
    meta.write_text("".join(json.dumps({"prompt": f"describe the {t}", "responses": [f"the {t} is clear", "wrong",
                                                                                       f"{t} ."]}) + "\n"
                            for t in ("moon", "star")))
    cfg = rm_config(rm_tiny_dir, tmp_path, prefs, **{"metarm.enabled": True, "metarm.responses": str(meta),
                                                  "metarm.k": 3, "metarm.eta": 0.5, "metarm.meta_batch_size": 2})
    trainer = rm_run.build_rm_trainer(cfg)
    assert isinstance(trainer, MetaRMTrainer)
    params = [p for p in trainer.model.parameters() if p.requires_grad]
    theta = [p.detach().clone() for p in params]
    idx = trainer.batch_indices(0)
    # by hand: θ' = θ + η ∇J, then the pair-loss gradient at θ'
    groups = trainer.meta_batch(0)
    j = metarm_difference_loss(trainer.scorer([s for g in groups for s in g])[0].view(2, 3))
    grads = torch.autograd.grad(j, params, allow_unused=True)
    with torch.no_grad():
        for p, g in zip(params, grads):
            if g is not None:
                p.add_(g, alpha=0.5)
    trainer.accumulate(idx)
    want = [p.grad.clone() for p in params]
    trainer.engine.optimizer.zero_grad()
    with torch.no_grad():
        for p, t in zip(params, theta):
            p.copy_(t)
    stats = trainer.gradient(idx)
    assert "metarm/difference_loss" in stats
    assert all(torch.equal(p, t) for p, t in zip(params, theta))  # θ restored before the optimizer step
    assert all(torch.allclose(p.grad, w, atol=1e-6) for p, w in zip(params, want))
    assert not torch.allclose(want[-1], torch.zeros_like(want[-1]))


def test_metarm_responses_file_errors_name_row_and_field(rm_tiny_dir, tmp_path, prefs):
    meta = tmp_path / "meta.jsonl"
    meta.write_text(json.dumps({"prompt": "q", "responses": ["a", "b"]}) + "\n")
    cfg = rm_config(rm_tiny_dir, tmp_path, prefs, **{"metarm.enabled": True, "metarm.responses": str(meta)})
    with pytest.raises(DataError, match=r"meta.jsonl, row 1, field 'responses': expected a list of at least "
                                        r"metarm.k=4 strings"):
        rm_run.build_rm_trainer(cfg)


def test_pair_metrics_on_hand_computed_scores():
    m = pair_metrics(torch.tensor([1.0, 0.0, 2.0, 3.0]), torch.tensor([0.0, 1.0, 2.0, 0.0]), bins=2)
    assert m["accuracy"] == pytest.approx((1 + 0 + 0.5 + 1) / 4)
    assert m["reward_mean"] == pytest.approx(9 / 8)
    # confidences σ(|Δ|) = .731, .731, .5, .953 → bins [.5,.75): 3 pairs (acc 0.5), [.75,1]: 1 pair (acc 1)
    low, high = m["calibration"]
    assert (low["count"], high["count"]) == (3, 1) and low["accuracy"] == pytest.approx(0.5)
    conf_low = (2 * torch.sigmoid(torch.tensor(1.0)).item() + 0.5) / 3
    conf_high = torch.sigmoid(torch.tensor(3.0)).item()
    assert m["ece"] == pytest.approx(0.75 * abs(0.5 - conf_low) + 0.25 * abs(1 - conf_high))


def test_decile_ids_split_by_rank():
    assert decile_ids(torch.arange(20.0).flip(0)).tolist() == [9, 9, 8, 8, 7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1,
                                                                0, 0]


def test_strength_writes_mu_sigma_columns_that_match_the_ensemble(rm_tiny_dir, tmp_path, prefs):
    out = tmp_path / "strength.jsonl"
    cfg = rm_config(rm_tiny_dir, tmp_path, prefs, **{"strength.models": 3, "strength.output": str(out),
                                                  "strength.report_columns": "[flipped]"})
    res = rm_run.strength(cfg)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 96 and {"mu", "sigma", "true_margin", "flipped"} <= set(rows[0])
    assert [r["mu"] for r in rows] == pytest.approx(res["mu"].tolist(), abs=1e-5)
    assert all(r["sigma"] >= 0 for r in rows) and res["sigma"].max() > 0  # the three models disagree
    assert len(res["table"]) == 10 and sum(r["count"] for r in res["table"]) == 96
    # the file feeds the recipes that need μ̂
    trainer = rm_run.build_rm_trainer(rm_config(rm_tiny_dir, tmp_path, out, **{"loss.recipe": "flip"}))
    assert int(trainer.flipped.sum()) == round(0.2 * 96)


def test_strength_puts_noisy_labels_in_the_bottom_deciles(rm_tiny_dir, tmp_path):
    train = tmp_path / "noisy.jsonl"
    write_preferences(make_pairs(600, seed=2, noise=0.25), train)
    cfg = rm_config(rm_tiny_dir, tmp_path, train, **{"strength.models": 3,
                                                     "strength.output": str(tmp_path / "s.jsonl"),
                                                  "strength.report_columns": "[flipped]", "train.epochs": 2,
                                                  "train.batch_size": 32})
    table = rm_run.strength(cfg)["table"]
    bottom = sum(r["flipped"] * r["count"] for r in table[:2]) / sum(r["count"] for r in table[:2])
    assert bottom > 0.45, [round(r["flipped"], 2) for r in table]  # 25% overall


def test_cli_train_eval_strength_and_ppo_with_the_trained_reward_model(tiny_dir, rm_tiny_dir, tmp_path, prefs, capsys):
    from blendrl.cli.main import main
    from tests.tiny import tiny_config

    config = tmp_path / "rm.yaml"
    config.write_text(yaml.safe_dump({"model": {"name": str(rm_tiny_dir)},
                                      "data": {"train": str(prefs), "eval": str(prefs)},
                                      "train": {"lr": 3e-3, "batch_size": 32},
                                      "logging": {"output_dir": str(tmp_path / "rm"), "tensorboard": False,
                                                  "progress": False}}))
    assert main(["rm", "train", "--config", str(config)]) == 0
    assert main(["rm", "eval", "--config", str(config), "--set", "eval.bins=5"]) == 0
    assert "accuracy" in json.loads((tmp_path / "rm" / "eval.json").read_text())
    assert main(["rm", "strength", "--config", str(config), "--set", "strength.models=2", "--set",
                 f"strength.output={tmp_path / 's.parquet'}", "--set", "model.trainable=head"]) == 0
    assert "mu range" in capsys.readouterr().out
    assert main(["rm", "train", "--config", str(config), "--set", "loss.recipe=bogus"]) == 2
    cfg = tiny_config(tiny_dir, tmp_path / "ppo", **{"train.iterations": 2})  # policy and RM tokenizers differ
    cfg.rewards[0].kind, cfg.rewards[0].name, cfg.rewards[0].path = "hf_rm", None, str(tmp_path / "rm" / "final")
    from blendrl.training.run import run

    res = run(cfg)
    assert math.isfinite(res["after"].metrics["eval/reward/mean"])


def test_metarm_samples_its_meta_set_from_a_policy(tiny_dir, rm_tiny_dir, tmp_path, prefs):
    cfg = rm_config(rm_tiny_dir, tmp_path, prefs, **{"metarm.enabled": True, "metarm.policy": str(tiny_dir),
                                                  "metarm.prompts": "builtin:concise_eval", "metarm.k": 2,
                                                  "metarm.max_new_tokens": 4, "train.epochs": 1})
    trainer = rm_run.build_rm_trainer(cfg)
    assert len(trainer.meta_set) == 64 and all(len(g) == 2 for g in trainer.meta_set)  # 64 held-out prompts
    m = trainer.train_step()
    assert math.isfinite(m["metarm/difference_loss"]) and math.isfinite(m["loss/total"])
