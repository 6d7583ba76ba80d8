"""Weight soups: arithmetic, Bone Soup coefficients, the SALSA soup reference in the loop, and `blendrl soup`."""
import pytest
import torch

from blendrl.models.soups import bone_soup_coefficients, weighted_state_dict


def test_weighted_state_dict_on_hand_values_and_buffers():
    a = {"w": torch.tensor([1.0, 2.0]), "step": torch.tensor(3)}
    b = {"w": torch.tensor([3.0, -2.0]), "step": torch.tensor(3)}
    out = weighted_state_dict([a, b], [0.25, 0.75])
    assert out["w"].tolist() == [2.5, -1.0] and out["step"].item() == 3
    with pytest.raises(ValueError, match="non-float tensor 'step' differs"):
        weighted_state_dict([a, {**b, "step": torch.tensor(4)}], [0.5, 0.5])


def test_bone_soup_coefficients_recover_the_preference_and_sum_to_one():
    A = [[0.8, 0.2], [0.2, 0.8]]
    x, x_sft = bone_soup_coefficients(A, [0.3, 0.7])
    assert x == pytest.approx([0.1 / 0.6, 0.5 / 0.6]) and x_sft == 0.0
    x, x_sft = bone_soup_coefficients(A, [0.3, 0.7], k=[1.25, 1.25])  # a = 0.2 → k = 1/(1−a)
    assert x == pytest.approx([1.25 * 0.1 / 0.6, 1.25 * 0.5 / 0.6]) and x_sft == pytest.approx(-0.25)
    assert sum(x) + x_sft == pytest.approx(1.0)


def test_salsa_soup_reference_averages_its_models_and_trains(tiny_dir, tmp_path):
    from tests.tiny import save_tiny, tiny_config
    from blendrl.training.run import build_trainer, run

    other = save_tiny(tmp_path / "other", seed=1)
    cfg = tiny_config(tiny_dir, tmp_path / "run", **{"train.iterations": 2, "reference.kind": "soup",
                                                     "reference.paths": f"[{tiny_dir}, {other}]"})
    trainer = build_trainer(cfg)
    from transformers import AutoModelForCausalLM

    a, b = (AutoModelForCausalLM.from_pretrained(p).state_dict() for p in (tiny_dir, other))
    with trainer.m.reference.context():  # offloaded by default (model.offload_frozen: auto): read in for the block
        ref = {k: v.clone() for k, v in trainer.m.reference.model.state_dict().items()}
    key = "model.layers.0.mlp.up_proj.weight"
    assert torch.allclose(ref[key], 0.5 * a[key] + 0.5 * b[key])
    # a soup of a model with itself is that model: KL to the reference starts at 0
    cfg = tiny_config(tiny_dir, tmp_path / "self", **{"train.iterations": 1, "reference.kind": "soup",
                                                      "reference.paths": f"[{tiny_dir}, {tiny_dir}]"})
    res = run(cfg)
    assert abs(res["last"].metrics["kl/seq_k1"]) < 1e-5


def test_cli_soup_and_bone_soup_write_loadable_models(tiny_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    from blendrl.cli.main import main
    from tests.tiny import save_tiny

    other = save_tiny(tmp_path / "other", seed=1)
    assert main(["soup", "--models", str(tiny_dir), str(tiny_dir), "--out", str(tmp_path / "same")]) == 0
    same, base = (AutoModelForCausalLM.from_pretrained(p).state_dict() for p in (tmp_path / "same", tiny_dir))
    assert all(torch.equal(same[k], base[k]) for k in base)  # 50/50 soup of identical models is that model
    assert main(["soup", "--models", str(tiny_dir), str(other), "--bone-matrix", "0.8,0.2;0.2,0.8",
                 "--preference", "0.3,0.7", "--extrapolate", "1.25,1.25", "--sft", str(tiny_dir),
                 "--out", str(tmp_path / "bone")]) == 0
    bone = AutoModelForCausalLM.from_pretrained(tmp_path / "bone").state_dict()
    o = AutoModelForCausalLM.from_pretrained(other).state_dict()
    key = "model.layers.0.mlp.up_proj.weight"
    x1, x2 = 1.25 * 0.1 / 0.6, 1.25 * 0.5 / 0.6
    assert torch.allclose(bone[key], x1 * base[key] + x2 * o[key] - 0.25 * base[key], atol=1e-6)
    assert main(["soup", "--models", str(tiny_dir), "--weights", "0.5", "0.5", "--out", str(tmp_path / "x")]) == 2
