"""Model options users bring from TRL/verl (``model.revision``, ``trust_remote_code``, ``attn_implementation``,
LoRA ``target_modules: all-linear``) and the model card written into every exported ``final/`` folder."""
import logging

import pytest
import torch

from blendrl.config import ConfigError, LoraConfig, PPORunConfig, from_dict
from blendrl.models import load_causal_lm
from blendrl.models.lora import add_lora
from tests.tiny import tiny_config


def test_the_hub_options_reach_from_pretrained_and_trusting_remote_code_is_logged(tiny_dir, caplog):
    cfg = from_dict(PPORunConfig, {"model": {"revision": "main", "attn_implementation": "eager"}})
    assert cfg.model.hub == {"revision": "main", "attn_implementation": "eager"}  # trust_remote_code off by default
    model = load_causal_lm(str(tiny_dir), hub={"attn_implementation": "eager"})
    assert model.config._attn_implementation == "eager"
    with caplog.at_level(logging.WARNING, logger="blendrl"):
        load_causal_lm(str(tiny_dir), hub={"trust_remote_code": True})
    assert "trust_remote_code is on" in caplog.text


def test_lora_all_linear_wraps_every_linear_layer_but_the_head(tiny_dir):
    policy = add_lora(load_causal_lm(str(tiny_dir)), LoraConfig(r=4, target_modules="all-linear"))
    wrapped = {n.split(".lora_A")[0].split(".")[-1] for n, _ in policy.named_parameters() if "lora_A" in n}
    assert wrapped == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    with pytest.raises(ConfigError, match="target_modules: a list of module names or 'all-linear'"):
        from_dict(PPORunConfig, {"model": {"lora": {"target_modules": "all"}}})


def test_the_final_folder_carries_a_model_card_and_still_loads(tiny_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    from blendrl.training.run import run

    res = run(tiny_config(tiny_dir, tmp_path, **{"train.iterations": 2}))
    card = (tmp_path / "final" / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers\n") and f"base_model: {tiny_dir}" in card
    assert "`blendrl ppo`" in card and "for 2 steps" in card and "builtin:concise" in card
    assert "| eval/reward/mean |" in card and "```yaml\nmodel:" in card
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "final")
    trained = res["trainer"].m.policy.state_dict()
    assert all(torch.equal(v, trained[k]) for k, v in loaded.state_dict().items())
