"""Reward sources: rules, weighted sums, HF reward models (and a critic started from one)."""
import pytest
import torch

from blendrl.rewards import CallableReward, HFRewardModel, RewardError, Sample, WeightedSum, rule
from blendrl.rewards.rules import concise_mention


def _s(response, **meta):
    return Sample([{"role": "user", "content": "q"}], response, meta, "builtin, row 1")


def test_concise_mention_reads_as_documented():
    # mentions 'volcano' (1) and uses 4 words within a limit of 8 (1) → 2
    assert concise_mention("", "A volcano erupts lava.", {"key_term": "volcano", "max_words": 8}) == 2.0
    # no mention; 16 words against a limit of 8 → 8/16
    assert concise_mention("", " ".join(["word"] * 16), {"key_term": "volcano", "max_words": 8}) == 0.5


def test_weighted_sum_combines_sources_and_keeps_components():
    a = CallableReward(lambda p, r, m: len(r), "len")
    b = CallableReward(rule("contains", text="yes"), "yes")
    total = WeightedSum([a, b], [0.5, 2.0]).score([_s("yes!"), _s("no")])
    assert total.total.tolist() == [0.5 * 4 + 2.0, 0.5 * 2]
    assert {k: v.tolist() for k, v in total.components.items()} == {"len": [4.0, 2.0], "yes": [1.0, 0.0]}


def test_a_source_s_scores_are_one_value_and_a_plain_tensor_is_read_as_its_total():
    """A user's source may return a tensor; a wrong shape is an error naming the source (nothing reads the source
    after the call: its stats come back in the value)."""
    from blendrl.rewards import Scores

    class Plain:
        name = "plain"

        def score(self, samples):
            return torch.ones(len(samples))

    class WithStats:
        name = "stats"

        def score(self, samples):
            return Scores(torch.zeros(len(samples)), stats={"seen": torch.arange(len(samples)).float()})

    class Wrong:
        name = "wrong"

        def score(self, samples):
            return torch.ones(len(samples) + 1)

    got = WeightedSum([Plain(), WithStats()], [1.0, 1.0]).score([_s("a"), _s("b")])
    assert got.total.tolist() == [1.0, 1.0] and got.stats["stats/seen"].tolist() == [0.0, 1.0]
    with pytest.raises(RewardError, match=r"reward 'wrong' returned .*for 2 samples"):
        WeightedSum([Wrong()], [1.0]).score([_s("a"), _s("b")])


def test_callable_reward_error_names_source_and_row():
    bad = CallableReward(lambda p, r, m: 1 / 0, "div")
    with pytest.raises(RewardError, match=r"reward 'div' raised ZeroDivisionError: .*\(prompt builtin, row 1\)"):
        bad.score([_s("x")])
    skipping = CallableReward(lambda p, r, m: 1 / 0, "div", on_error="skip")
    assert torch.isnan(skipping.score([_s("x")]).total).all()


@pytest.fixture(scope="module")
def tiny_rm(tiny_dir, tmp_path_factory):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(1)
    rm = AutoModelForSequenceClassification.from_pretrained(tiny_dir, num_labels=1)
    folder = tmp_path_factory.mktemp("rm") / "rm"
    rm.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_dir).save_pretrained(folder)
    return folder


def test_hf_reward_model_reads_the_last_real_token(tiny_rm):
    source = HFRewardModel(str(tiny_rm))
    short, long_ = _s("yes"), _s("yes no yes no yes")
    batched = source.score([short, long_]).total
    alone = torch.cat([source.score([short]).total, source.score([long_]).total])
    assert torch.allclose(batched, alone, atol=1e-5)  # right padding does not move the read-out
    assert batched[0] != batched[1]


def test_critic_from_a_reward_model_reuses_its_head_and_trains(tiny_dir, tiny_rm, tmp_path):
    from safetensors.torch import load_file

    from blendrl.training.run import build_trainer
    from tests.tiny import tiny_config

    cfg = tiny_config(tiny_dir, tmp_path, **{"critic.init": "reward_model", "critic.path": str(tiny_rm),
                                             "rewards": f"[{{kind: hf_rm, path: '{tiny_rm}', weight: 2.0}}]"})
    trainer = build_trainer(cfg)
    rm_head = load_file(tiny_rm / "model.safetensors")["score.weight"]
    assert torch.equal(trainer.m.critic.score.weight.detach(), rm_head)
    m = trainer.step().metrics
    assert "loss/value" in m and not torch.equal(trainer.m.critic.score.weight.detach(), rm_head)
