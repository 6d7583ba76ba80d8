"""The shipped CGPO task files are well formed: reference responses pass their own judges, metadata is valid."""
import pytest

from blendrl.data.builtin import BUILTIN_PROMPTS
from blendrl.data.prompts import read_prompt_rows
from blendrl.judges import JUDGES
from blendrl.judges.instructions import instructions_of
from blendrl.rewards import Sample


def rows(name):
    return [Sample(m, md.get("reference_response", ""), md, f"{src}, row {r}") for m, md, src, r in
            read_prompt_rows(f"builtin:{name}")]


@pytest.mark.parametrize("split", ["", "_eval"])
def test_math_and_code_reference_responses_pass_their_judges(split):
    for kind, task in (("math", "math"), ("code", "code")):
        samples = rows(task + split)
        verdicts = JUDGES[kind]().judge(samples)
        assert all(v.passed for v in verdicts), [(s.where, v.reason) for s, v in zip(samples, verdicts) if not v.passed]


def test_instruction_metadata_is_valid_and_splits_are_disjoint():
    for split in ("instructions", "instructions_eval"):
        for s in rows(split):
            assert 2 <= len(instructions_of(s, "instructions")) <= 3
    for task in ("math", "instructions", "code", "chat"):
        train = {m[-1]["content"] for m, *_ in read_prompt_rows(f"builtin:{task}")}
        held_out = {m[-1]["content"] for m, *_ in read_prompt_rows(f"builtin:{task}_eval")}
        assert train and held_out and not train & held_out, task
    assert {"math", "code", "chat", "instructions"} <= set(BUILTIN_PROMPTS)
