"""Opt-in (BLENDRL_SLOW=1): the real embedded SmolLM2-135M-Instruct through the whole loop."""
import pytest
import torch

pytestmark = pytest.mark.slow


def test_embedded_default_resolves_to_a_safetensors_cache(tmp_path, monkeypatch):
    from blendrl.models import resolve_model

    path = resolve_model("smollm2-135m-instruct")
    assert path.endswith("models/smollm2-135m-instruct")
    from transformers import AutoConfig

    assert AutoConfig.from_pretrained(path).model_type == "llama"


def test_one_real_ppo_iteration_on_smollm2(tmp_path):
    from blendrl.config import PPORunConfig, from_dict
    from blendrl.training.run import run

    cfg = from_dict(PPORunConfig, {
        "generation": {"max_new_tokens": 16},
        "algorithm": {"epochs": 2},
        "train": {"iterations": 1, "prompts_per_iteration": 2, "samples_per_prompt": 2, "micro_batch_size": 4},
        "logging": {"output_dir": str(tmp_path), "tensorboard": False, "progress": False, "eval_prompts": 2},
    })
    res = run(cfg)
    m = res["last"].metrics
    assert all(torch.isfinite(torch.tensor(v)) for v in m.values() if isinstance(v, float))
    assert m["check/behaviour_logp_gap"] < 1e-3  # the sampler's log-probs match the training forward
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(res["final"])
