"""HumanEval through the sandbox: all 164 canonical solutions pass on the recorded cases, each one with its return
value changed fails, and the loop over a model runs."""
from blendrl.eval.humaneval import humaneval_pass_at_1, load_problems, metadata, with_entry_point
from blendrl.judges.code import CodeJudge
from blendrl.rewards import Sample

MUTATE = '''
_original = {name}


def _changed(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, (list, tuple)):
        return type(value)([*value, 0])
    if value is None:
        return 0
    return None


def {name}(*args, **kwargs):
    return _changed(_original(*args, **kwargs))
'''


def test_all_canonical_solutions_pass_and_every_changed_return_value_fails():
    """The recorded cases are right (164/164 canonical pass) and they bite (164/164 with a changed value fail)."""
    problems = load_problems()
    assert len(problems) == 164
    judge = CodeJudge("humaneval")
    good = [Sample([], f"```python\n{p['prompt']}{p['canonical_solution']}```", metadata(p), p["task_id"])
            for p in problems]
    bad = [Sample([], f"```python\n{p['prompt']}{p['canonical_solution']}\n{MUTATE.format(name=p['entry_point'])}```",
                  metadata(p), p["task_id"]) for p in problems]
    good_v, bad_v = judge.judge(good), judge.judge(bad)
    failed_good = [(p["task_id"], v.reason) for p, v in zip(problems, good_v) if not v.passed]
    passed_bad = [p["task_id"] for p, v in zip(problems, bad_v) if v.passed]
    assert failed_good == [] and passed_bad == []


def test_none_returning_body_fails():
    problems = load_problems(6)
    judge = CodeJudge("humaneval")
    bad = [Sample([], f"```python\n{p['prompt']}    return None\n```", metadata(p)) for p in problems]
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


def _in_prompt(args, prompt: str) -> bool:
    """Could a program copy this call from the prompt? (one line shows every argument, as repr or text, in order)"""
    def shows(line: str) -> bool:
        at = 0
        for a in args:
            hits = [i for i in (line.find(repr(a), at), line.find(str(a), at)) if i >= 0]
            if not hits:
                return False
            at = min(hits) + 1
        return True

    return any(shows(line) for line in prompt.splitlines())


def test_no_constant_and_no_lookup_of_the_prompts_examples_passes_any_problem():
    """A program that returns one constant, or the expected value of every call it can copy from the prompt and one
    constant otherwise, passes a problem only if all its remaining cases expect that constant: no problem is so."""
    from blendrl.judges.code_cases import case_from_dict, matches

    weak = []
    for p in load_problems():
        cases = [case_from_dict(d, p["entry_point"], p["task_id"], "humaneval") for d in metadata(p)["cases"]]
        rest = [c for c in cases if not _in_prompt(c.args, p["prompt"])]
        answers = [c.expected for c in cases] if cases[0].compare != "poly_root" else [0.0, 1.0, -1.0, 2.0, 0.5]
        if not rest or any(all(matches(a, c) for c in rest) for a in answers):
            weak.append(p["task_id"])
    assert weak == []
