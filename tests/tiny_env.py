"""A plugin for the multi-turn tests (``plugins: [tests.tiny_env]``): an environment the tiny model can play and a
reward that reads the episode, and the check of an episode batch's tokens that every generator backend passes."""
from blendrl.core.registries import REWARD_SOURCES
from blendrl.core.types import Scores
from blendrl.envs import ENVIRONMENTS, Step

CALL_WORD = "robot"  # the tiny vocabulary cannot write JSON: saying this word is this environment's tool call


class Probe:
    """A turn with the word ``word`` (default ``robot``) calls the probe (once per episode): the answer "ocean"
    comes back as a user turn; any other turn ends the episode."""

    tools: list = []

    def __init__(self, word: str = CALL_WORD) -> None:
        self.word = word

    def reset(self, prompt) -> dict:
        return {"called": False}

    def step(self, state: dict, text: str) -> Step:
        if self.word in text.split() and not state["called"]:
            state["called"] = True
            return Step("ocean", "user", {"tool_calls": 1.0})
        return Step(None)


ENVIRONMENTS.register("tiny_probe")(Probe)


class Called:
    """1 for an episode that called the probe (its turns hold the probe's answer), else 0."""

    name = "called"

    def score(self, samples) -> Scores:
        import torch

        return Scores(torch.tensor([float(any(t["role"] == "user" and t["content"] == "ocean" for t in s.turns or []))
                                    for s in samples]))


REWARD_SOURCES.register("tiny_called")(lambda cfg: Called())


def assert_episode_tokens(trainer, tolerance: float = 1e-4):
    """One batch of ``trainer``'s episodes (with the ``tiny_probe`` environment, on whatever generator backend it
    has): each row's tokens are the generator's own outputs turn by turn with the probe's answer spliced in
    between, each turn's prompt is the whole episode so far, the mask is 1 on the sampled tokens only, a turn that
    ends at a stop word is answered (not truncated), and the log-probs the update recomputes equal the sampler's
    to ``tolerance``. Returns the batch's rollout."""
    import torch

    from blendrl.core.types import Experience
    from blendrl.training.experience import response_logprobs

    runner, sampled = trainer.episodes, []
    real = runner.generator.sample

    def spy(prompts, params, gen, shard=None):
        r = real(prompts, params, gen, shard)
        sampled.append((prompts, r))
        return r

    runner.generator.sample = spy
    try:
        prompts, rollout, _, _ = trainer.rollout_batch()
    finally:
        runner.generator.sample = real
    assert any(len(t.turns) > 1 for t in rollout.transcripts), "no episode called the probe: pick another seed"
    n_turns = [len([t for t in tr.turns if t["role"] == "assistant"]) for tr in rollout.transcripts]
    stops = set(runner.settings.stop_ids)
    for i in range(len(prompts)):
        width = int(rollout.attention[i].sum())
        got = rollout.response_ids[i, :width].tolist()
        expect, mask = [], []
        for c in range(n_turns[i]):  # rebuild row i from the generator's own outputs and the splices
            prefixes, r = sampled[c]
            j = [k for k in range(len(prompts)) if n_turns[k] > c].index(i)  # its place among the open rows
            assert prefixes[j] == runner.prompt_ids(prompts[i]) + expect  # the whole episode so far, as tokens
            n = int(r.response_mask[j].sum())
            expect += r.response_ids[j, :n].tolist()
            mask += [1.0] * n
            if c < n_turns[i] - 1:
                assert not stops or expect[-1] in stops  # the turn that called the probe ended at the stop word
                obs = runner.observation_ids("user", "ocean", expect[-1])
                expect += obs
                mask += [0.0] * len(obs)
        assert got == expect, i
        assert rollout.response_mask[i, :width].tolist() == mask and rollout.response_mask[i, width:].sum() == 0
    exp = Experience.from_rollout(rollout)
    with torch.no_grad():
        logp = response_logprobs(trainer.m.policy, exp, trainer.params.temperature)
    gap = ((logp - exp.behaviour_logp).abs() * exp.response_mask).max().item()
    assert gap < tolerance and (exp.behaviour_logp[exp.response_mask == 0] == 0).all()
    return rollout
