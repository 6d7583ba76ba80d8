"""Segment-level rewards (docs/algorithms.md §10): entropy segmentation, segment mean, the location-aware
normaliser and the spread on hand numbers; a segment reward model trained on the tiny model; its dense rewards
mapped onto the policy's tokens and used by PPO."""
import json
import math

import pytest
import torch

from blendrl.functional.segments import (
    fit_location_normalizer, location_normalize, segment_ends, segment_mean, segment_positions, spread_over_segments,
    token_entropy,
)

ENT = torch.tensor([[0.5, 3.0, 0.1, 2.5, 0.2, 0.0], [3.0, 3.0, 0.1, 0.0, 0.0, 0.0]])
MASK = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0]]).float()


def test_token_entropy_of_a_uniform_and_a_peaked_distribution():
    logits = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [100.0, 0.0, 0.0, 0.0]]])
    assert token_entropy(logits).tolist()[0] == pytest.approx([math.log(4), 0.0], abs=1e-6)


def test_segments_end_at_high_entropy_tokens_with_a_minimum_length_and_at_the_last_token():
    assert segment_ends(ENT, MASK, 2.0, 1).int().tolist() == [[0, 1, 0, 1, 1, 0], [1, 1, 1, 0, 0, 0]]
    assert segment_ends(ENT, MASK, 2.0, 3).int().tolist() == [[0, 0, 0, 1, 1, 0], [0, 0, 1, 0, 0, 0]]


def test_segment_mean_positions_and_spread_on_hand_numbers():
    ends = segment_ends(ENT, MASK, 2.0, 1)
    scores = torch.tensor([[9.0, 1.0, 9.0, 2.0, 3.0, 9.0], [4.0, 5.0, 6.0, 9.0, 9.0, 9.0]])
    assert segment_mean(scores, ends).tolist() == [2.0, 5.0]  # the head read only at segment ends
    rows, p = segment_positions(ends)
    assert rows.tolist() == [0, 0, 0, 1, 1, 1] and p.tolist() == pytest.approx([1 / 3, 2 / 3, 1, 1 / 3, 2 / 3, 1])
    dense = spread_over_segments(torch.tensor([1.0, 2, 3, 4, 5, 6]), ends, MASK)
    # row 0: segments [0, 1], [2, 3], [4] → 1/2, 1/2, 2/2, 2/2, 3
    assert dense.tolist() == [[0.5, 0.5, 1.0, 1.0, 3.0, 0.0], [4.0, 5.0, 6.0, 0.0, 0.0, 0.0]]


def test_location_normalizer_recovers_known_lines():
    a, c, b, d = 0.4, -1.0, -0.2, 0.7
    ps = torch.tensor([0.05 + 0.1 * i for i in range(10)])
    mu, sigma = a * ps.log() + c, b * ps.log() + d
    # per position: μ ± σ in equal numbers → bin mean μ(p), population std σ(p), exactly
    rewards = torch.cat([mu + sigma, mu - sigma])
    params = fit_location_normalizer(rewards, torch.cat([ps, ps]))
    assert [params[k] for k in "acbd"] == pytest.approx([a, c, b, d], abs=1e-6)
    assert location_normalize(torch.tensor([mu[3] + 2 * sigma[3]]), ps[3:4], params).item() == pytest.approx(2.0)


def test_dense_rewards_per_character_land_on_the_policy_tokens(tiny_dir):
    from blendrl.core.types import Experience
    from blendrl.training.experience import dense_token_rewards
    from tests.tiny import build_tokenizer

    tok = build_tokenizer()
    ids = tok("yes no", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    exp = Experience(torch.tensor([[5] + ids]), torch.ones(1, 4), torch.arange(4)[None], torch.ones(1, 3),
                     torch.zeros(1, 3))
    # "yes no": chars y e s _ n o; token "yes" adds "yes", token "no" adds " no", EOS adds nothing
    out = dense_token_rewards(tok, exp, [[1.0, 0.0, 0.5, 0.25, 0.0, 2.0]])
    assert out.tolist() == [[1.5, 2.25, 0.0]]


@pytest.fixture
def segment_rm(rm_tiny_dir, tmp_path_factory):
    from blendrl.data.preferences import write_preferences
    from blendrl.data.synthetic import make_pairs
    from blendrl.training.rm import run as rm_run
    from tests.test_reward_model import rm_config

    tmp = tmp_path_factory.mktemp("segrm")
    write_preferences(make_pairs(600, seed=0), tmp / "p.jsonl")
    write_preferences(make_pairs(200, seed=1), tmp / "e.jsonl")
    return rm_run.train_rm(rm_config(rm_tiny_dir, tmp / "out", tmp / "p.jsonl", **{
        "segments.enabled": True, "segments.threshold": 3.0, "data.eval": str(tmp / "e.jsonl"), "train.epochs": 2,
        "train.batch_size": 32}))


def test_segment_reward_model_trains_on_segment_means_and_its_folder_scores_densely(segment_rm):
    from transformers import AutoModelForSequenceClassification

    from blendrl.core.types import Sample
    from blendrl.rewards.segment_rm import SegmentRewardModel

    assert segment_rm["eval"]["accuracy"] > 0.6, segment_rm["eval"]["accuracy"]
    settings = json.loads((segment_rm["final"] / "segments.json").read_text())
    assert set(settings["normalizer"]) == {"a", "b", "c", "d"} and settings["threshold"] == 3.0
    AutoModelForSequenceClassification.from_pretrained(segment_rm["final"])  # plain transformers loads it
    scorer = segment_rm["trainer"].scorer
    enc = segment_rm["trainer"].pairs
    for ids in enc.chosen[:5]:  # every response's segments end inside it, the last one at its last token
        ends = scorer.ends[tuple(ids)]
        assert ends and all(e < len(ids) for e in ends)
    src = SegmentRewardModel(str(segment_rm["final"]))
    samples = [Sample(p.prompt, p.chosen, {}, "") for p in enc.pairs[:4]]
    got = src.score(samples)
    assert [len(d) for d in got.dense] == [len(s.response) for s in samples]
    assert torch.allclose(got.total, torch.tensor([sum(d) for d in got.dense]), atol=1e-5)


def test_ppo_trains_on_the_dense_segment_rewards(segment_rm, tiny_dir, tmp_path, monkeypatch):
    from blendrl.config import ConfigError
    from blendrl.training.run import build_trainer
    from tests.tiny import tiny_config

    rewards = f"[{{kind: segment_rm, path: '{segment_rm['final']}'}}]"
    from blendrl.training.names import check_names

    with pytest.raises(ConfigError, match=r"rewards\[0\]\.kind: a segment_rm .* needs algorithm.name ppo"):
        check_names(tiny_config(tiny_dir, tmp_path, **{"rewards": rewards, "algorithm.name": "rloo"}))
    cfg = tiny_config(tiny_dir, tmp_path, **{"rewards": rewards, "shaping.missing_eos_penalty": 0.5})
    trainer = build_trainer(cfg)
    seen = {}
    real = trainer.algorithm.prepare
    monkeypatch.setattr(trainer.algorithm, "prepare", lambda exp, kl: seen.setdefault("exp", exp) and real(exp, kl))
    real_shape = trainer.shape_scores

    def shape(raw, finished, update=True, lengths=None):
        seen.setdefault("raw", raw)
        return real_shape(raw, finished, update, lengths)

    monkeypatch.setattr(trainer, "shape_scores", shape)
    metrics = trainer.step().metrics
    exp, raw = seen["exp"], seen["raw"]
    # the dense rewards carry each response's total; what stays at the last token is the missing-EOS penalty
    assert torch.allclose(exp.token_scores.sum(1), raw, atol=1e-4)
    finished = (exp.response_ids == trainer.m.tokenizer.eos_token_id).any(1)
    assert torch.allclose(exp.scores, torch.where(finished, 0.0, -0.5), atol=1e-4), (exp.scores, finished)
    assert "reward/dense_token_mean" in metrics and math.isfinite(metrics["loss/policy"])
    # PPO's per-token rewards are the dense rewards plus the last token's remainder (the KL coefficient is 0 here)
    mask = exp.response_mask
    last = mask.cumsum(1).argmax(1)
    want = exp.token_scores * mask
    want[torch.arange(len(last)), last] += exp.scores
    assert metrics["ppo/token_reward_mean"] == pytest.approx((want.sum() / mask.sum()).item(), abs=1e-5)


def test_repeating_segments_does_not_multiply_the_dense_reward(segment_rm):
    """The length game against a summed segment reward: say the same thing four times. With the default ``mean``
    aggregate a response's total is the mean of its normalised segment rewards (within their range); ``sum``
    (the paper's) grows with the number of segments."""
    from blendrl.core.types import Sample
    from blendrl.functional.segments import location_normalize, segment_positions
    from blendrl.rewards.segment_rm import SegmentRewardModel

    pair = segment_rm["trainer"].pairs.pairs[0]
    once = pair.chosen
    four = " ".join([once] * 4)
    mean_src = SegmentRewardModel(str(segment_rm["final"]))
    sum_src = SegmentRewardModel(str(segment_rm["final"]), aggregate="sum")
    samples = [Sample(pair.prompt, r, {}, "") for r in (once, four)]
    mean_total, sum_total = mean_src.score(samples).total, sum_src.score(samples).total
    scorer = segment_rm["trainer"].scorer  # the segment rewards of the repeated response, normalised
    from blendrl.models.segments import encode_with_response

    ids, mask, _ = encode_with_response(scorer.tokenizer, pair.prompt, four)
    ends_at = scorer.ends[tuple(ids)] = scorer.entropy.ends([ids], [mask], 3.0, 2, scorer.pad_id)[0]
    with torch.no_grad():
        scores, _, _ = scorer.token_scores([ids])
    ends = torch.zeros_like(scores, dtype=torch.bool)
    ends[0, ends_at] = True
    normed = location_normalize(scores[ends], segment_positions(ends)[1],
                                json.loads((segment_rm["final"] / "segments.json").read_text())["normalizer"])
    assert normed.min() - 1e-4 <= mean_total[1] <= normed.max() + 1e-4
    assert sum_total[1].item() == pytest.approx(normed.sum().item(), abs=1e-3)
    assert mean_total[1].item() == pytest.approx(normed.mean().item(), abs=1e-4)
    assert len(ends_at) > 3  # the repetition made more segments, which only the sum rewards


def test_rm_eval_scores_a_segment_model_by_its_segment_mean(segment_rm, rm_tiny_dir):
    from blendrl.training.rm import run as rm_run
    from tests.test_reward_model import rm_config

    out = segment_rm["final"].parent
    cfg = rm_config(rm_tiny_dir, out, out.parent / "p.jsonl", **{
        "segments.enabled": True, "segments.threshold": 3.0, "data.eval": str(out.parent / "e.jsonl")})
    assert rm_run.eval_rm(cfg)["accuracy"] == pytest.approx(segment_rm["eval"]["accuracy"])
