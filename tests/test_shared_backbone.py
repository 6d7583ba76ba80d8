"""Ensemble members on one backbone: head-only members share one pass, LoRA members share one base model; both
score exactly as k separate reward models do, and members that cannot share are refused or fall back."""
import pytest
import torch

from blendrl.config import RewardSourceConfig, from_dict
from blendrl.data.preferences import write_preferences
from blendrl.data.synthetic import make_pairs
from blendrl.rewards import RewardError, Sample
from blendrl.rewards.factory import build_reward
from blendrl.rewards.hf_rm import HFRewardModel
from blendrl.rewards.shared_backbone import (SeparateMembers, SharedHeads, SharedLoRA, backbone_mismatch,
                                             load_members)
from blendrl.training.rm import run as rm_run
from tests.test_reward_model import rm_config

SAMPLES = [Sample([{"role": "user", "content": q}], r)
           for q, r in [("good day", "yes yes"), ("bad", "no"), ("a longer question here", "yes no yes")]]


@pytest.fixture(scope="module")
def prefs(tmp_path_factory):
    path = tmp_path_factory.mktemp("prefs") / "train.jsonl"
    write_preferences(make_pairs(32, seed=3), path)
    return path


def _train(model_dir, out, prefs, seed, **sets):
    return rm_run.train_rm(rm_config(model_dir, out, prefs, **{"train.seed": seed, **sets}))["final"]


@pytest.fixture(scope="module")
def head_members(rm_tiny_dir, prefs, tmp_path_factory):
    root = tmp_path_factory.mktemp("heads")
    return [_train(rm_tiny_dir, root / f"m{i}", prefs, i, **{"model.trainable": "head"}) for i in range(3)]


def _separate(folders):
    return SeparateMembers([HFRewardModel(str(f)) for f in folders]).member_scores(SAMPLES)  # (k, B)


def test_head_only_members_share_one_backbone_and_score_as_separate_models(head_members):
    shared = load_members(head_members)  # auto
    assert isinstance(shared, SharedHeads) and len(shared) == 3 and shared.heads.shape[0] == 3
    got, want = shared.member_scores(SAMPLES), _separate(head_members)
    assert got.shape == (3, len(SAMPLES))
    assert torch.allclose(got, want, atol=1e-5)
    assert not torch.allclose(got[0], got[1])  # different seeds → different heads


def test_lora_members_are_adapters_on_one_base_and_score_as_their_merged_folders(rm_tiny_dir, prefs, tmp_path):
    sets = {"model.trainable": "lora", "model.lora.r": 4, "model.lora.target_modules": "[q_proj, v_proj]",
            "train.lr": 1e-2}
    folders = [_train(rm_tiny_dir, tmp_path / f"m{i}", prefs, i, **sets) for i in range(2)]
    assert (folders[0] / "adapter" / "adapter_config.json").is_file()
    shared = load_members(folders)
    assert isinstance(shared, SharedLoRA)
    got, want = shared.member_scores(SAMPLES), _separate(folders)
    assert torch.allclose(got, want, atol=1e-4)
    assert not torch.allclose(got[0], got[1])
    # one set of base weights: every base parameter is a single tensor shared by both adapters
    n_lora = sum(1 for n, _ in shared.rm.model.named_parameters() if "lora_" in n)
    assert n_lora == 2 * 2 * 2 * 2  # 2 adapters × 2 layers × (q, v) × (A, B)
    offloaded = load_members(folders, offload=True)  # the run's placement offloads reward models on the CPU
    assert torch.equal(offloaded.member_scores(SAMPLES), got)


def test_offloaded_shared_heads_score_as_in_memory(head_members):
    """``model.offload_frozen`` reaches ensembles too (one placement for every reward model): the backbone's weights
    are read back for each batch and the scores do not change."""
    want = load_members(head_members).member_scores(SAMPLES)
    offloaded = load_members(head_members, offload=True)
    assert isinstance(offloaded, SharedHeads) and offloaded.rm.offloaded is not None
    assert torch.equal(offloaded.member_scores(SAMPLES), want)


def test_members_that_cannot_share_fall_back_or_fail_with_a_clear_error(head_members, rm_tiny_dir, prefs, tmp_path):
    full = _train(rm_tiny_dir, tmp_path / "full", prefs, 7)  # full fine-tuning: its backbone moved
    why = backbone_mismatch(head_members[0], full)
    assert why is not None and "differs" in why
    mixed = [head_members[0], full]
    assert isinstance(load_members(mixed), SeparateMembers)
    with pytest.raises(RewardError, match="does not share the backbone .*share: none"):
        load_members(mixed, share="heads")
    with pytest.raises(RewardError, match="share: lora needs every member to hold adapter/"):
        load_members(head_members, share="lora")
    with pytest.raises(ValueError, match="ensemble share: expected one of auto, lora, heads, none, got 'both'"):
        load_members(head_members, share="both")
    with pytest.raises(RewardError, match="is not a folder"):
        load_members([head_members[0], tmp_path / "missing"])


def test_ensemble_reward_source_uses_the_shared_backbone_and_aggregates(head_members):
    cfg = from_dict(RewardSourceConfig, {"kind": "ensemble", "name": "ens",
                                         "options": {"members": [str(f) for f in head_members], "aggregate": "wco"}})
    total = build_reward([cfg])
    assert isinstance(total.sources[0].scorer, SharedHeads)
    want = _separate(head_members).min(0).values
    got = total.score(SAMPLES)
    assert torch.allclose(got.total, want, atol=1e-5)
    assert "ens/disagreement" in got.stats


@pytest.mark.parametrize("lam", [0.1, 2.0])
def test_a_uwo_ensemble_source_scores_with_its_configured_lambda(head_members, lam):
    """``options.lam`` reaches UWO's penalty (mean − λ·variance) end to end. Mutation caught: the factory dropping
    ``lam`` (UWO would score with its default λ)."""
    cfg = from_dict(RewardSourceConfig, {"kind": "ensemble", "name": "ens", "options": {
        "members": [str(f) for f in head_members], "aggregate": "uwo", "lam": lam}})
    got = build_reward([cfg]).score(SAMPLES).total
    members = _separate(head_members)  # (k, B)
    assert torch.allclose(got, members.mean(0) - lam * members.var(0, unbiased=False), atol=1e-5)
    from blendrl.functional.ensembles import ENSEMBLE_AGGREGATORS

    assert torch.allclose(got, ENSEMBLE_AGGREGATORS["uwo"](members, lam=lam), atol=1e-5)
