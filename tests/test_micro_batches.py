"""Length-sorted, trimmed micro-batches: the same per-token numbers as the padded batch, with less padding."""
from __future__ import annotations

import pytest
import torch

from blendrl.training.experience import teacher_forced_experience
from blendrl.training.experience import (
    Experience,
    forward_rows,
    micro_batches,
    pad_response,
    response_logprobs,
    response_values,
)


def test_trimmed_drops_the_columns_that_are_padding_in_every_row():
    """P = 3, T = 3. Row 0: prompt [_, 5, 6], response [7, 8, _]; row 1: prompt [_, _, 9], response [10, _, _].
    Prompt column 0 is padding in both rows; response column 2 is past both rows' last token."""
    exp = Experience(
        input_ids=torch.tensor([[0, 5, 6, 7, 8, 0], [0, 0, 9, 10, 0, 0]]),
        attention_mask=torch.tensor([[0, 1, 1, 1, 1, 0], [0, 0, 1, 1, 0, 0]]),
        position_ids=torch.tensor([[0, 0, 1, 2, 3, 3], [0, 0, 0, 1, 1, 1]]),
        response_mask=torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]]),
        behaviour_logp=torch.tensor([[-0.1, -0.2, 0.0], [-0.3, 0.0, 0.0]]),
        ref_logp=torch.tensor([[-1.0, -2.0, 0.0], [-3.0, 0.0, 0.0]]),
        scores=torch.tensor([0.5, -0.5]),
    )
    t = exp.trimmed()
    assert t.input_ids.tolist() == [[5, 6, 7, 8], [0, 9, 10, 0]]
    assert t.attention_mask.tolist() == [[1, 1, 1, 1], [0, 1, 1, 0]]
    assert t.position_ids.tolist() == [[0, 1, 2, 3], [0, 0, 1, 1]]
    assert t.prompt_len == 2 and t.response_ids.tolist() == [[7, 8], [10, 0]]
    assert t.ref_logp.tolist() == [[-1.0, -2.0], [-3.0, 0.0]]
    assert t.response_mask.tolist() == [[1.0, 1.0], [1.0, 0.0]]
    assert t.scores.tolist() == [0.5, -0.5]  # per-sequence fields stay as they are
    assert t.old_logp is None
    assert pad_response(t.ref_logp, 3).tolist() == exp.ref_logp.tolist()


def test_trimmed_keeps_tokens_of_a_skipped_sample():
    """A skipped sample's response_mask is zeroed after scoring; its tokens are still attended to and kept."""
    exp = teacher_forced_experience([[5, 6], [9]], [[7, 8, 11], [10]], 0, [True, True])
    exp.response_mask[0] = 0.0
    assert exp.trimmed().response_ids.shape[1] == 3


def mixed_experience(tokenizer) -> Experience:
    """Six rows whose prompts (2–11 tokens) and responses (1–6 tokens) differ in length, in no particular order."""
    g = torch.Generator().manual_seed(0)
    lengths = [(11, 2), (2, 6), (7, 1), (3, 3), (10, 5), (2, 4)]
    vocab = range(10, len(tokenizer))
    draw = lambda n: [vocab[int(i)] for i in torch.randint(len(vocab), (n,), generator=g)]  # noqa: E731
    return teacher_forced_experience([draw(p) for p, _ in lengths], [draw(r) for _, r in lengths],
                                     tokenizer.pad_token_id, [True] * len(lengths))


def test_micro_batches_group_rows_of_similar_prompt_length():
    from tests.tiny import build_tokenizer

    exp = mixed_experience(build_tokenizer())
    groups = micro_batches(exp, torch.arange(len(exp)), 2)
    assert [g.tolist() for g in groups] == [[5, 1], [3, 2], [4, 0]]  # prompts 2, 2 | 3, 7 | 10, 11
    widths = [exp.select(g).trimmed().input_ids.shape[1] for g in groups]
    assert widths == [2 + 6, 7 + 3, 11 + 5] and max(widths) < exp.input_ids.shape[1] + 1
    assert [g.tolist() for g in micro_batches(exp, torch.tensor([0, 2, 4]), 2)] == [[2, 4], [0]]


def test_forward_rows_gives_the_padded_batch_numbers_in_row_order():
    from tests.tiny import build_model, build_tokenizer

    tok = build_tokenizer()
    model = build_model(tok, hidden=32, layers=2)
    exp = mixed_experience(tok)
    with torch.no_grad():
        padded = response_logprobs(model, exp, 0.7)  # (6, T) one pass over the whole padded batch
        rows = forward_rows(lambda mb: response_logprobs(model, mb, 0.7), exp, 2)  # (6, T)
    assert rows.shape == padded.shape
    torch.testing.assert_close(rows, padded, atol=1e-5, rtol=1e-5)
    assert (rows[exp.response_mask == 0] == 0).all()


def test_critic_values_of_trimmed_rows_match_the_padded_batch(tiny_dir):
    from blendrl.models.heads import load_critic
    from tests.tiny import build_tokenizer

    critic = load_critic(str(tiny_dir))
    torch.nn.init.normal_(critic.score.weight)  # a fresh head starts at zero: make the values differ
    exp = mixed_experience(build_tokenizer())
    with torch.no_grad():
        padded = response_values(critic, exp) * exp.response_mask
        rows = forward_rows(lambda mb: response_values(critic, mb), exp, 4) * exp.response_mask
    assert padded.abs().sum() > 0
    torch.testing.assert_close(rows, padded, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"])
def test_every_loss_aggregation_gives_one_gradient_whatever_the_micro_batches(tiny_dir, tmp_path, agg):
    """A micro-batch's loss is weighted by its share of the minibatch's units (tokens, or sequences for the
    seq-mean forms), so micro-batches of 1 row and one pass over all rows give the same gradient; and the
    aggregations give different gradients (each changes what the update weighs)."""
    from blendrl.training.run import build_trainer
    from tests.tiny import tiny_config

    def first_gradient(micro: int, mode: str) -> dict:
        cfg = tiny_config(tiny_dir, tmp_path / f"{mode}{micro}", **{
            "algorithm.name": "grpo", "algorithm.epochs": 1, "algorithm.loss_agg": mode, "train.micro_batch_size":
            micro, "train.forward_batch_size": 16, "kl.placement": "loss", "kl.coef": 0.1})
        trainer = build_trainer(cfg)
        engine, seen = trainer.engines["policy"], {}
        real_step = engine.step

        def step(finite):
            seen.update({n: p.grad.clone() for n, p in trainer.m.policy.named_parameters() if p.grad is not None})
            return real_step(finite)

        engine.step = step
        trainer.step()
        return seen

    whole, rows = first_gradient(16, agg), first_gradient(1, agg)
    assert whole.keys() == rows.keys() and whole
    assert max((whole[k] - rows[k]).abs().max().item() for k in whole) < 1e-6
    if agg != "token-mean":
        base = first_gradient(16, "token-mean")
        assert max((whole[k] - base[k]).abs().max().item() for k in whole) > 1e-4
