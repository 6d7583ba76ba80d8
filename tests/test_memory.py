"""Frozen models offloaded to a memory-mapped file: same numbers, no weights in memory between uses, and a training
run with ``model.offload_frozen`` ends with exactly the weights of one without."""
import copy
import sys

import pytest
import torch

from blendrl.config import ConfigError
from blendrl.models.offload import OffloadedWeights
from tests.tiny import build_model, build_tokenizer, tiny_config


def _rss_bytes() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def test_offloaded_model_gives_the_same_logits_and_holds_no_weights_between_uses(tmp_path):
    tok = build_tokenizer()
    model = build_model(tok)
    expected_model = copy.deepcopy(model)
    ids = torch.tensor([[2, 4, 10, 11, 12], [2, 5, 13, 14, 3]])
    offloaded = OffloadedWeights(model, tmp_path)
    assert all(p.is_meta for p in model.parameters())
    assert model.model.rotary_emb.inv_freq.device.type == "cpu"  # non-persistent buffers stay
    with offloaded.loaded() as m:
        with offloaded.loaded():  # nesting maps once
            pass
        assert not any(p.is_meta for p in m.parameters())
        got = m(ids).logits
        assert m.lm_head.weight.data_ptr() == m.model.embed_tokens.weight.data_ptr()  # tied weights share the map
    assert torch.equal(got, expected_model(ids).logits)
    assert all(p.is_meta for p in model.parameters())
    offloaded.close()
    assert not offloaded.path.exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_offloaded_weights_leave_the_resident_set_between_uses(tmp_path):
    big = torch.nn.Linear(4096, 4096, bias=False).requires_grad_(False)  # 64 MiB
    x = torch.randn(2, 4096)
    expected = big(x)
    before = _rss_bytes()
    offloaded = OffloadedWeights(big, tmp_path)
    released = _rss_bytes()
    with offloaded.loaded() as m:
        assert torch.equal(m(x), expected)
        mapped = _rss_bytes()
    after = _rss_bytes()
    size = 4096 * 4096 * 4
    assert before - released > 0.8 * size, (before, released)
    assert mapped - after > 0.8 * size, (mapped, after)  # the mapping's pages leave the RSS with the mapping


def test_reference_strategies_offload_or_say_why_not(tiny_dir):
    from blendrl.config import ReferenceConfig
    from blendrl.models import add_lora, load_causal_lm
    from blendrl.training.experience import Experience
    from blendrl.training.reference import build_reference
    from blendrl.rollout import Rollout

    policy = load_causal_lm(str(tiny_dir))
    rollout = Rollout(torch.tensor([[2, 4, 10]]), torch.ones(1, 3, dtype=torch.long), torch.tensor([[11, 12]]),
                      torch.ones(1, 2), torch.zeros(1, 2), torch.tensor([False]))
    exp = Experience.from_rollout(rollout)
    plain = build_reference(policy, ReferenceConfig(kind="frozen"), "float32")
    offloaded = build_reference(policy, ReferenceConfig(kind="frozen"), "float32", offload=True)
    assert all(p.is_meta for p in offloaded.model.parameters())
    assert torch.equal(offloaded.logprobs(exp, 0.7, 1), plain.logprobs(exp, 0.7, 1))
    with pytest.raises(ConfigError, match="EMA reference changes"):
        build_reference(policy, ReferenceConfig(kind="ema"), "float32", offload=True)
    from blendrl.config import LoraConfig

    lora_ref = build_reference(add_lora(policy, LoraConfig()), ReferenceConfig(kind="frozen"), "float32", offload=True)
    assert lora_ref.offloaded is None  # the policy with adapters disabled: no second copy to offload


def test_training_with_offloaded_reference_and_reward_model_ends_with_the_same_weights(tiny_dir, tmp_path,
                                                                                        monkeypatch):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from blendrl.training.run import build_trainer

    monkeypatch.setenv("BLENDRL_CACHE", str(tmp_path / "cache"))
    rm_dir = tmp_path / "rm"
    AutoModelForSequenceClassification.from_pretrained(tiny_dir, num_labels=1).save_pretrained(rm_dir)
    AutoTokenizer.from_pretrained(tiny_dir).save_pretrained(rm_dir)
    common = {"train.iterations": 2, "kl.coef": 0.1, "data.eval_prompts": "null",
              "rewards": f"[{{kind: hf_rm, path: '{rm_dir}'}}, {{kind: callable, name: 'tests.tiny:yes_share'}}]"}
    weights, metrics = [], []
    for offload in (False, True):
        trainer = build_trainer(tiny_config(tiny_dir, tmp_path / f"run{offload}",
                                            **common, **{"model.offload_frozen": offload}))
        metrics.append([trainer.step().metrics for _ in range(2)])
        weights.append({k: v.clone() for k, v in trainer.m.policy.state_dict().items()})
        if offload:
            assert all(p.is_meta for p in trainer.m.reference.model.parameters())
            assert len(list((tmp_path / "cache" / "offload").glob("*.pt"))) == 2  # reference + reward model
    assert metrics[0][1]["kl/seq_k1"] != 0.0
    for key in ("reward/mean", "kl/seq_k1", "loss/policy"):
        assert [m[key] for m in metrics[0]] == [m[key] for m in metrics[1]], key
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


@pytest.mark.parametrize("algo", ["ppo", "cgpo"])
def test_gradient_checkpointing_recomputes_layers_in_backward_only_and_changes_nothing(tiny_dir, tmp_path, algo):
    from blendrl.training.cgpo_run import build_cgpo_trainer
    from blendrl.training.run import build_trainer
    from tests.tiny import tiny_cgpo_config

    weights, calls = [], []
    for ckpt in (False, True):
        overrides = {"train.iterations": 2, "model.gradient_checkpointing": ckpt}
        if algo == "ppo":
            trainer = build_trainer(tiny_config(tiny_dir, tmp_path / f"{ckpt}", **overrides))
        else:
            trainer = build_cgpo_trainer(tiny_cgpo_config(tiny_dir, tmp_path / f"{ckpt}", **overrides))
        layer = trainer.m.policy.model.layers[0]
        count = {"n": 0}
        layer.mlp.register_forward_pre_hook(lambda *_: count.__setitem__("n", count["n"] + 1))  # runs on recompute
        trainer.step()
        trainer.step()
        calls.append(count["n"])
        weights.append({k: v.clone() for k, v in trainer.m.policy.state_dict().items()})
        assert not layer.training  # the sampler and no-grad passes never see a checkpointing layer
    assert calls[1] > calls[0]  # recomputed in backward: the layer's forward ran more often
    assert all(torch.allclose(weights[0][k], weights[1][k], atol=1e-6) for k in weights[0])


def test_cgpo_task_reward_models_are_offloaded_too(tiny_dir, tmp_path, monkeypatch):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from blendrl.training.cgpo_run import build_cgpo_trainer
    from tests.tiny import tiny_cgpo_config

    monkeypatch.setenv("BLENDRL_CACHE", str(tmp_path / "cache"))
    rm_dir = tmp_path / "rm"
    AutoModelForSequenceClassification.from_pretrained(tiny_dir, num_labels=1).save_pretrained(rm_dir)
    AutoTokenizer.from_pretrained(tiny_dir).save_pretrained(rm_dir)
    cfg = tiny_cgpo_config(tiny_dir, tmp_path / "run", **{"model.offload_frozen": True, "train.iterations": 1})
    source = cfg.tasks[0].rewards[0]
    source.kind, source.name, source.path = "hf_rm", None, str(rm_dir)
    trainer = build_cgpo_trainer(cfg)
    rm = trainer.tasks[0].reward.sources[0]
    assert rm.offloaded is not None and all(p.is_meta for p in rm.model.parameters())
    metrics = trainer.step().metrics
    assert all(p.is_meta for p in rm.model.parameters()) and "crpg/reward" in metrics
