"""HumanEval through the sandbox: canonical solutions pass, wrong ones fail, and the loop over a model runs."""
from blendrl.eval.humaneval import humaneval_pass_at_1, load_problems, with_entry_point
from blendrl.judges.code import CodeJudge
from blendrl.rewards import Sample


def test_canonical_solutions_pass_and_broken_ones_fail():
    problems = load_problems(6)
    assert len(problems) == 6 and len(load_problems()) == 164
    judge = CodeJudge("humaneval")
    good = [Sample([], f"```python\n{p['prompt']}{p['canonical_solution']}```",
                   {"test": p["test"], "entry_point": p["entry_point"]}) for p in problems]
    bad = [Sample([], f"```python\n{p['prompt']}    return None\n```",
                  {"test": p["test"], "entry_point": p["entry_point"]}) for p in problems]
    assert all(v.passed for v in judge.judge(good))
    assert not any(v.passed for v in judge.judge(bad))


def test_body_only_answers_get_the_signature():
    p = load_problems(1)[0]
    fixed = with_entry_point(f"```python\n{p['canonical_solution']}```", p)
    assert f"def {p['entry_point']}(" in fixed


def test_pass_at_1_over_a_tiny_model(tiny_dir):
    from blendrl.models import load_causal_lm, load_tokenizer
    from blendrl.rollout import GENERATORS, SamplingParams

    tok = load_tokenizer(str(tiny_dir))
    gen = GENERATORS["hf"](load_causal_lm(str(tiny_dir)), tok.pad_token_id, [tok.eos_token_id])
    out = humaneval_pass_at_1(gen, tok, load_problems(3), SamplingParams(8, 1.0, 1.0))
    assert out["total"] == 3 and out["pass@1"] == 0.0  # random words are no code
    assert all(r["reason"] == "no fenced code block" for r in out["results"])
