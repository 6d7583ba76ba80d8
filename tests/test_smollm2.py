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


def test_smollm2_reward_model_trains_saves_and_scores_as_a_ppo_reward_source(tmp_path):
    from transformers import AutoModelForSequenceClassification

    from blendrl.config import load_config
    from blendrl.config.rm_schema import RMRunConfig
    from blendrl.data.preferences import write_preferences
    from blendrl.data.synthetic import make_pairs
    from blendrl.rewards import HFRewardModel, Sample
    from blendrl.training.rm import run as rm_run

    write_preferences(make_pairs(64, seed=0), tmp_path / "p.jsonl")
    cfg = load_config(RMRunConfig, None, [
        f"data.train={tmp_path / 'p.jsonl'}", "data.eval=null", "model.trainable=lora", "model.lora.r=8",
        "train.batch_size=16", "train.micro_batch_size=16", "train.lr=2e-4", f"logging.output_dir={tmp_path}",
        "logging.tensorboard=false", "logging.progress=false",
    ])
    res = rm_run.train_rm(cfg)
    plain = AutoModelForSequenceClassification.from_pretrained(res["final"])
    assert plain.config.model_type == "llama"
    p = res["trainer"].pairs
    got = HFRewardModel(str(res["final"])).score([Sample(x.prompt, x.chosen, {}, "") for x in p.pairs[:4]]).total
    assert torch.allclose(got, res["trainer"].scorer.score(p.chosen[:4]), atol=1e-4)
