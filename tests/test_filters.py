"""PF-PPO policy filtration (docs/algorithms.md §14): the registered filters on hand-made scores, and the filter
inside the PPO loop (filtered rows leave the update; the tiny model still learns)."""
import pytest
import torch

from blendrl.config import ConfigError
from blendrl.functional.filters import ROLLOUT_FILTERS
from blendrl.training.run import build_trainer
from tests.tiny import learn_yes, tiny_config

NAN = float("nan")
SCORES = torch.tensor([0.1, 0.9, -0.5, 0.3, 2.0, 1.0, NAN, 0.0])  # two prompts × 4 responses; one unscorable
VALID = torch.isfinite(SCORES)


def test_best_of_n_and_best_worst_on_hand_scores():
    assert ROLLOUT_FILTERS["best_of_n"](SCORES, VALID, 4, 2).tolist() == [0, 1, 0, 1, 1, 1, 0, 0]
    # best 0.9 and worst −0.5; best 2.0 and worst *valid* 0.0 (the NaN row is never kept)
    assert ROLLOUT_FILTERS["best_worst"](SCORES, VALID, 4, 2).tolist() == [0, 1, 1, 0, 1, 0, 0, 1]
    # keep 3: the two best and the worst
    assert ROLLOUT_FILTERS["best_worst"](SCORES, VALID, 4, 3).tolist() == [0, 1, 1, 1, 1, 1, 0, 1]
    # a group with no more valid rows than keep keeps all of them
    few = torch.tensor([1.0, NAN, NAN, 0.0])
    assert ROLLOUT_FILTERS["best_worst"](few, torch.isfinite(few), 4, 2).tolist() == [1, 0, 0, 1]
    assert ROLLOUT_FILTERS["best_of_n"](few, torch.isfinite(few), 4, 3).tolist() == [1, 0, 0, 1]


def test_best_random_keeps_the_best_and_random_valid_others():
    seen = set()
    for seed in range(30):
        kept = ROLLOUT_FILTERS["best_random"](SCORES, VALID, 4, 2, torch.Generator().manual_seed(seed))
        assert kept.sum() == 4 and kept[1] and kept[4] and not kept[6]  # the best of each; never the NaN row
        seen.add(tuple(kept.tolist()))
    assert len(seen) > 3  # the other kept row varies with the generator


def test_filter_config_is_checked_by_the_filter_kind():
    """A named kind owns what it needs of the rest of the config, reported with its key path before a model loads."""
    from blendrl.training.names import check_names

    with pytest.raises(ConfigError, match="filter.kind: policy filtration needs algorithm.name ppo"):
        check_names(tiny_config("m", "o", **{"filter.kind": "best_worst", "algorithm.name": "rloo",
                                             "train.samples_per_prompt": 4}))
    with pytest.raises(ConfigError, match="filter.keep: must be < train.samples_per_prompt"):
        check_names(tiny_config("m", "o", **{"filter.kind": "best_worst", "train.samples_per_prompt": 2}))
    with pytest.raises(ConfigError, match="algorithm.name: rloo needs train.samples_per_prompt >= 2"):
        check_names(tiny_config("m", "o", **{"algorithm.name": "rloo", "train.samples_per_prompt": 1}))
    check_names(tiny_config("m", "o", **{"filter.kind": "best_worst", "train.samples_per_prompt": 4}))


def test_filtered_rows_leave_the_update(tiny_dir, tmp_path, monkeypatch):
    cfg = tiny_config(tiny_dir, tmp_path, **{"filter.kind": "best_worst", "filter.keep": 2,
                                             "train.samples_per_prompt": 4, "train.micro_batch_size": 16})
    trainer = build_trainer(cfg)
    captured = {}
    real = trainer.algorithm.prepare

    def prepare(exp, kl_coef):
        out = real(exp, kl_coef)
        captured["exp"] = exp
        return out

    monkeypatch.setattr(trainer.algorithm, "prepare", prepare)
    metrics = trainer.step().metrics
    exp = captured["exp"]
    live = exp.response_mask.sum(1) > 0  # (B,)
    assert metrics["filter/kept_fraction"] == 0.5
    assert live.view(-1, 4).sum(1).le(2).all()
    assert (exp.advantages[~live] == 0).all()
    for group, rows in zip(exp.scores.view(-1, 4), live.view(-1, 4)):
        if rows.sum() == 2 and group.max() > group.min():  # the kept rows are the best and the worst
            assert {group[rows].max().item(), group[rows].min().item()} == {group.max().item(), group.min().item()}


def test_pf_ppo_learns_on_the_tiny_model(tiny_dir, tmp_path):
    before, after = learn_yes(tiny_dir, tmp_path, **{"filter.kind": "best_worst", "train.samples_per_prompt": 4,
                                                     "train.prompts_per_iteration": 2})
    assert before < 0.1 and after > 0.5, (before, after)
