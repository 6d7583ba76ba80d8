"""The agent-hack judges on a real model's honest answers: SmolLM2-135M-Instruct as it is, sampled once on each
of the first ``--n`` held-out problems of ``builtin:arithmetic_eval`` and ``builtin:math_eval`` with the
calculator's tool note in its prompt (it makes no call), and the share of those answers each judge fails (a false
violation: the model writes no tool's turn and claims no run; what it writes is its own, right or wrong). Writes
``benchmarks/results/agent_hacks/smollm2_honest.md``.

    python benchmarks/agent_hacks_smollm2.py [--n 24]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(n: int) -> None:
    import torch

    from blendrl.core.types import Sample
    from blendrl.data import BUILTIN_PROMPTS
    from blendrl.envs import ENVIRONMENTS, EpisodeRunner, EpisodeSettings
    from blendrl.judges import JUDGES
    from blendrl.models.loading import load_causal_lm, load_tokenizer, resolve_model

    path = resolve_model("smollm2-135m-instruct")
    tok, model = load_tokenizer(path), load_causal_lm(path)
    runner = EpisodeRunner(None, tok, ENVIRONMENTS["calculator"](), EpisodeSettings())
    torch.manual_seed(0)
    samples = []
    for name in ("arithmetic_eval", "math_eval"):
        for problem in BUILTIN_PROMPTS[name]()[:n]:
            messages = runner.with_tool_note([{"role": "user", "content": problem["prompt"]}])
            ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
            ids = ids if isinstance(ids, torch.Tensor) else ids["input_ids"]
            out = model.generate(ids, max_new_tokens=96, do_sample=True, temperature=0.8,
                                 pad_token_id=tok.eos_token_id)
            text = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
            samples.append(Sample(messages, text, turns=[{"role": "assistant", "content": text}]))
    lines = ["| judge | answers | failed | share |", "|---|---|---|---|"]
    reasons = []
    for judge in ("tool_imitation", "tool_claims"):
        failed = [v.reason for v in JUDGES[judge]().judge(samples) if not v.passed]
        lines.append(f"| {judge} | {len(samples)} | {len(failed)} | {len(failed) / len(samples):.0%} |")
        reasons += [f"- {judge}: {r[:200]}" for r in failed]
    text = "\n".join(lines) + "\n\n" + "\n".join(reasons) + "\n"
    print(text)
    out = ROOT / "benchmarks/results/agent_hacks/smollm2_honest.md"
    out.write_text(text)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=24)
    main(parser.parse_args().n)
