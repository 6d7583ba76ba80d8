"""`blendrl sft`: response-only loss, two seeds → two SFT models, their SALSA soup as the PPO reference."""
import json

import pytest
import torch

from blendrl.data import DataError
from blendrl.training.sft import encode_sft, read_sft_rows
from tests.tiny import build_tokenizer


def _data(path, n=32):
    topics = ("cat", "dog", "moon", "star")
    rows = [{"prompt": f"what is a {t} ?", "response": "yes yes yes"} for t in topics] * (n // 4)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_only_response_tokens_carry_loss(tmp_path):
    tok = build_tokenizer()
    (ids, n_prompt), = encode_sft(read_sft_rows(str(_data(tmp_path / "d.jsonl", 4)))[:1], tok, 512)
    assert tok.decode(ids[n_prompt:]).split()[:3] == ["yes", "yes", "yes"]
    assert "yes" not in tok.decode(ids[:n_prompt])


def test_bad_sft_row_names_file_row_and_field(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "q", "response": "a"}) + "\n" + json.dumps({"prompt": "q"}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl, row 2, field 'response': missing"):
        read_sft_rows(str(bad))


def test_two_sft_seeds_make_a_salsa_soup_reference(tiny_dir, tmp_path):
    from blendrl.cli.main import main
    from blendrl.training.run import run
    from tests.tiny import tiny_config

    data = _data(tmp_path / "d.jsonl")
    finals = []
    for seed in (0, 1):
        out = tmp_path / f"sft{seed}"
        sets = [f"model.name={tiny_dir}", f"data={data}", f"logging.output_dir={out}", "logging.tensorboard=false",
                "logging.progress=false", f"train.seed={seed}", "train.lr=5e-3", "train.epochs=10",
                "train.batch_size=8", "train.micro_batch_size=4"]
        assert main(["sft", *(a for s in sets for a in ("--set", s))]) == 0
        finals.append(out / "final")
    from transformers import AutoModelForCausalLM

    a, b = (AutoModelForCausalLM.from_pretrained(f).state_dict() for f in finals)
    assert any(not torch.equal(a[k], b[k]) for k in a)  # different data orders, different models
    cfg = tiny_config(finals[0], tmp_path / "ppo", **{"train.iterations": 2, "reference.kind": "soup",
                                                      "reference.paths": f"[{finals[0]}, {finals[1]}]"})
    res = run(cfg)
    assert res["before"].metrics["eval/reward/mean"] > 0.5  # SFT taught 'yes' (the tiny task's reward)


def test_the_run_folder_is_logging_output_dir_and_the_old_key_says_so(tiny_dir, tmp_path, capsys):
    from blendrl.cli.main import main

    data = _data(tmp_path / "d.jsonl", 8)
    assert main(["sft", "--set", f"model.name={tiny_dir}", "--set", f"data={data}", "--set", "train.batch_size=4",
                 "--set", f"output_dir={tmp_path / 'old'}"]) == 2
    assert "output_dir: moved to logging.output_dir" in capsys.readouterr().err
    assert main(["sft", "--set", f"model.name={tiny_dir}", "--set", f"data={data}", "--set", "train.batch_size=4",
                 "--set", f"logging.output_dir={tmp_path / 'run'}", "--set", "logging.progress=false"]) == 0
    assert "sft: 2 steps, loss" in capsys.readouterr().out
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [1, 2] and all("loss/sft" in r for r in rows)
    assert (tmp_path / "run" / "checkpoints" / "step-000002" / "model" / "model.safetensors").is_file()
    assert any((tmp_path / "run" / "tensorboard").iterdir())


def test_model_device_dtype_checkpointing_and_lora_reach_the_sft_model(tiny_dir, tmp_path, monkeypatch):
    """``model.*`` means the same in ``blendrl sft`` as in the RL commands (the meta device stands in for a GPU);
    with LoRA only the adapters train and ``final/`` is a merged plain model."""
    from safetensors.torch import load_file

    from blendrl.config import from_dict
    from blendrl.config.sft_schema import SFTRunConfig
    from blendrl.core import dist
    from blendrl.training.sft import build_sft_trainer, run_sft

    def cfg(**model):
        return from_dict(SFTRunConfig, {
            "model": {"name": str(tiny_dir), **model}, "data": str(_data(tmp_path / "d.jsonl", 8)),
            "train": {"batch_size": 4, "micro_batch_size": 4, "lr": 1e-2},
            "logging": {"output_dir": str(tmp_path / "run"), "progress": False, "tensorboard": False}})

    with monkeypatch.context() as m:
        asked = []
        m.setattr(dist, "resolve_device", lambda name: asked.append(name) or torch.device("meta"))
        trainer = build_sft_trainer(cfg(device="cuda:1", dtype="bfloat16", gradient_checkpointing=True))
        assert asked == ["cuda:1"]
        assert {(p.device.type, p.dtype) for p in trainer.model.parameters()} == {("meta", torch.bfloat16)}
        assert any(getattr(mod, "gradient_checkpointing", False) for mod in trainer.model.modules())
    res = run_sft(cfg(lora={"r": 4, "alpha": 8}))
    trained = [n for n, p in res["trainer"].model.named_parameters() if p.requires_grad]
    assert trained and all("lora_" in n for n in trained)
    final = load_file(res["final"] / "model.safetensors")
    assert not any("lora" in k for k in final)
