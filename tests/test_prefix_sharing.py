"""A prompt shared by several rows runs once: same hidden states, log-probs, values, gradients and RM scores as
the plain full forward (up to float rounding)."""
import pytest
import torch

from blendrl.models.prefix_sharing import prompt_groups, shared_prefix_layout, suffix_hidden
from blendrl.training.experience import Experience, response_logprobs, response_values
from tests.test_rollout import _tiny_causal_lm
from tests.tiny import build_tokenizer


def _experience(tok, groups=(2, 1, 3), P=6, T=5, seed=0) -> Experience:
    """Rows of len(groups) prompts (each repeated groups[i] times, different left padding per prompt), random
    responses, the last row of each group ending early (right padding)."""
    g = torch.Generator().manual_seed(seed)
    ids, attn = [], []
    for i, k in enumerate(groups):
        n = P - i  # prompt i has P - i real tokens
        prompt = torch.randint(10, len(tok), (n,), generator=g)
        for j in range(k):
            resp = torch.randint(10, len(tok), (T,), generator=g)
            r_len = T - 2 if j == k - 1 and k > 1 else T
            ids.append(torch.cat([torch.full((P - n,), tok.pad_token_id), prompt, resp]))
            attn.append(torch.cat([torch.zeros(P - n), torch.ones(n), torch.ones(r_len), torch.zeros(T - r_len)]))
    input_ids, attention_mask = torch.stack(ids), torch.stack(attn).long()
    input_ids[attention_mask == 0] = tok.pad_token_id
    position_ids = (attention_mask.cumsum(1) - 1).clamp_min(0)
    mask = attention_mask[:, P:].float()
    return Experience(input_ids, attention_mask, position_ids, mask, torch.zeros_like(mask))


def test_prompt_groups_finds_repeated_prefixes():
    ids = torch.tensor([[0, 5, 6], [0, 5, 6], [5, 5, 6], [0, 5, 6]])
    mask = torch.tensor([[0, 1, 1], [0, 1, 1], [1, 1, 1], [1, 1, 1]])  # row 3: same ids as 0, other mask
    first, inverse = prompt_groups(ids, mask)
    assert inverse[0] == inverse[1] and len({int(inverse[i]) for i in (0, 2, 3)}) == 3
    assert torch.equal(inverse[first], torch.arange(len(first)))  # each group's first row belongs to it
    assert prompt_groups(ids[1:], mask[1:]) is None  # all distinct


@pytest.mark.parametrize("kind", ["llama", "qwen2", "gpt2"])
def test_suffix_hidden_equals_the_full_forward(kind):
    tok = build_tokenizer()
    model = _tiny_causal_lm(kind, tok).eval()
    decoder = getattr(model, model.base_model_prefix)
    exp = _experience(tok)
    P = exp.prompt_len
    with torch.no_grad():
        full = decoder(input_ids=exp.input_ids, attention_mask=exp.attention_mask,
                       position_ids=exp.position_ids).last_hidden_state[:, P - 1:]
        shared = suffix_hidden(decoder, exp.input_ids, exp.attention_mask, exp.position_ids, P)
    keep = torch.cat([torch.ones(len(exp), 1), exp.attention_mask[:, P:]], 1).bool()  # attended columns
    assert shared.shape == full.shape
    assert torch.allclose(shared[keep], full[keep], atol=1e-5)


def test_shared_log_probs_values_and_gradients_match_row_by_row_forwards(tiny_dir):
    from transformers import AutoModelForCausalLM

    from blendrl.models import load_critic

    tok = build_tokenizer()
    exp = _experience(tok)
    policy = AutoModelForCausalLM.from_pretrained(tiny_dir).eval()
    torch.manual_seed(3)
    critic = load_critic(str(tiny_dir))  # a fresh value head on the tiny backbone
    params = [*policy.parameters(), *critic.parameters()]

    def run(batches):  # log-probs, values and the gradients of one loss over the rows, summed over batches
        lps, vs = [], []
        for idx in batches:
            e = exp.select(idx)
            logp, values = response_logprobs(policy, e, temperature=0.7), response_values(critic, e)  # (b, T)
            ((logp * e.response_mask).sum() + values.square().sum()).backward()
            lps.append(logp.detach())
            vs.append(values.detach())
        grads = [p.grad.clone() for p in params]
        for p in params:
            p.grad = None
        return torch.cat(lps), torch.cat(vs), grads

    lp_s, v_s, g_s = run([torch.arange(len(exp))])  # one batch: three prompts shared by 2, 1, 3 rows
    lp_p, v_p, g_p = run([torch.tensor([i]) for i in range(len(exp))])  # a row at a time: nothing shared
    keep = exp.attention_mask[:, exp.prompt_len:].bool()
    assert torch.allclose(lp_s[keep], lp_p[keep], atol=1e-5)
    assert (lp_s[~keep] == 0).all()
    assert torch.allclose(v_s, v_p, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(g_s, g_p))
    assert max(float(g.abs().max()) for g in g_s) > 0


def test_shared_prefix_layout_by_hand():
    rows = [[1, 2, 3], [1, 2, 4], [5, 6, 7, 8, 9], [1, 9]]
    ids, mask, pos, split, last = shared_prefix_layout(rows, ["a", "a", "b", "a"], pad_id=0)
    # group a: common prefix [1] (row 3 differs at its 2nd token); lone b: all prefix
    assert split == 5
    assert ids.tolist() == [[0, 0, 0, 0, 1, 2, 3], [0, 0, 0, 0, 1, 2, 4], [5, 6, 7, 8, 9, 0, 0],
                            [0, 0, 0, 0, 1, 9, 0]]
    assert mask.tolist() == [[0, 0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 1, 1, 1], [1, 1, 1, 1, 1, 0, 0],
                             [0, 0, 0, 0, 1, 1, 0]]
    assert pos[0].tolist()[4:] == [0, 1, 2] and pos[2].tolist()[:5] == [0, 1, 2, 3, 4]
    assert last.tolist() == [2, 2, 0, 1]  # last token's column in suffix_hidden's output (0 = column split - 1)
    ids, *_, split, last = shared_prefix_layout([[1, 2, 3], [1, 2, 3]], ["a", "a"], pad_id=0)
    assert split == 3 and last.tolist() == [0, 0]  # equal rows: all prefix
    assert shared_prefix_layout(rows[:3], ["a", "b", "c"], pad_id=0) is None


def test_reward_model_scores_repeated_prompts_as_one_at_a_time(tiny_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from blendrl.rewards import HFRewardModel, Sample

    torch.manual_seed(1)
    rm = AutoModelForSequenceClassification.from_pretrained(tiny_dir, num_labels=1)
    rm.save_pretrained(tmp_path / "rm")
    AutoTokenizer.from_pretrained(tiny_dir).save_pretrained(tmp_path / "rm")
    source = HFRewardModel(str(tmp_path / "rm"))
    q1, q2 = [{"role": "user", "content": "what is the sun ?"}], [{"role": "user", "content": "why"}]
    samples = [Sample(q1, "yes"), Sample(q1, "the sun is a star"), Sample(q2, "no"), Sample(q1, "yes")]
    batched = source.score(samples).total
    alone = torch.cat([source.score([s]).total for s in samples])
    assert torch.allclose(batched, alone, atol=1e-5)
    assert batched[0] == pytest.approx(float(batched[3]), abs=1e-6) and batched[0] != batched[1]
