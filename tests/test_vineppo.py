"""VinePPO (docs/algorithms.md §15): steps and step advantages on hand numbers, the Monte-Carlo values built from
the continuations the policy samples, and the algorithm learning in the loop on the tiny model."""
import pytest
import torch

from blendrl.core.types import Rollout
from blendrl.functional.advantages import step_advantages, step_ids
from blendrl.training.run import build_trainer
from tests.tiny import learn_yes, tiny_config


def test_steps_end_after_a_newline_or_after_step_tokens():
    ids = torch.tensor([[5, 9, 5, 5, 5, 5, 0], [9, 5, 5, 0, 0, 0, 0]])  # 9 plays the newline
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0, 0]]).float()
    assert step_ids(ids, mask, 3, (9,)).tolist() == [[0, 0, 1, 1, 1, 2, 2], [0, 1, 1, 1, 1, 1, 1]]
    assert step_ids(ids, mask, 2).tolist() == [[0, 0, 1, 1, 2, 2, 2], [0, 0, 1, 1, 1, 1, 1]]


def test_step_advantages_on_hand_numbers():
    steps = torch.tensor([[0, 0, 1, 1, 1, 1], [0, 1, 1, 1, 1, 1]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0]]).float()
    r = torch.tensor([[-0.1, 0, 0, 0, 1.0, 0], [0, 0, 2.0, 0, 0, 0]])  # a KL term, then the score on the last token
    v = torch.tensor([[0.2, 0.2, 0.5, 0.5, 0.5, 0], [0.1, 0.7, 0.7, 0, 0, 0]])
    # row 0: A_0 = −0.1 + 0.5 − 0.2 = 0.2, A_1 = 1 + 0 − 0.5 = 0.5; row 1: A_0 = 0 + 0.7 − 0.1, A_1 = 2 − 0.7
    want = torch.tensor([[0.2, 0.2, 0.5, 0.5, 0.5, 0], [0.6, 1.3, 1.3, 0, 0, 0]])
    assert torch.allclose(step_advantages(r, v, steps, mask), want)


def test_mc_values_average_the_shaped_scores_of_the_policy_s_continuations(tiny_dir, tmp_path, monkeypatch):
    from blendrl.training.vine import mc_values

    cfg = tiny_config(tiny_dir, tmp_path, **{"algorithm.name": "vineppo", "algorithm.vine.samples": 2,
                                             "algorithm.vine.step_tokens": 2, "generation.max_new_tokens": 6})
    trainer = build_trainer(cfg)
    tok = trainer.m.tokenizer
    yes, no, eos = tok.convert_tokens_to_ids(["yes", "no"]) + [tok.eos_token_id]
    calls = []

    def sample(prompts, params, gen):  # continuation k of every prefix: "yes" for k = 0, "no no" for k = 1
        calls.append((len(prompts), params.max_new_tokens))
        conts = [[yes, eos] if i % 2 == 0 else [no, no, eos] for i in range(len(prompts))]
        width = max(map(len, conts))
        ids = torch.tensor([c + [0] * (width - len(c)) for c in conts])
        mask = torch.tensor([[1.0] * len(c) + [0.0] * (width - len(c)) for c in conts])
        return Rollout(torch.zeros(len(prompts), 1, dtype=torch.long), torch.ones(len(prompts), 1, dtype=torch.long),
                       ids, mask, torch.zeros_like(mask), torch.ones(len(prompts), dtype=torch.bool))

    monkeypatch.setattr(trainer.generator, "sample", sample)
    prompts = [trainer.train_prompts[0]]
    response = [yes, no, yes, eos]  # steps [yes no] [yes eos]
    from blendrl.core.types import Experience

    P = len(prompts[0].input_ids)
    ids = torch.tensor([prompts[0].input_ids + response])
    exp = Experience(ids, torch.ones_like(ids), torch.arange(ids.shape[1])[None], torch.ones(1, 4), torch.zeros(1, 4))
    assert exp.prompt_len == P
    values, steps, stats = mc_values(exp, prompts, cfg.algorithm.vine, tok, trainer.generator, trainer.params,
                                     trainer.sampling_gen, trainer.continuation_scores)
    assert steps.tolist() == [[0, 0, 1, 1]]
    # step 0 starts from the prompt: "yes" (share 1) and "no no" (0) → 0.5
    # step 1 starts after "yes no": "yes no yes" (2/3) and "yes no no no" (1/4) → (2/3 + 1/4)/2
    assert values.tolist()[0] == pytest.approx([0.5, 0.5, (2 / 3 + 0.25) / 2, (2 / 3 + 0.25) / 2])
    assert sorted(calls) == [(2, 4), (2, 6)]  # one call per budget: 6 − 0 and 6 − 2 new tokens, K = 2 each
    assert stats["vine/continuations"] == 4


def test_vineppo_learns_on_the_tiny_model_without_a_critic(tiny_dir, tmp_path):
    before, after = learn_yes(tiny_dir, tmp_path, **{"algorithm.name": "vineppo", "algorithm.vine.step_tokens": 3,
                                                     "algorithm.vine.samples": 2})
    assert before < 0.1 and after > 0.6, (before, after)
    metrics = (tmp_path / "metrics.jsonl").read_text()
    assert '"vine/steps_mean"' in metrics and '"loss/value"' not in metrics  # Monte-Carlo values, no critic
