"""A plugin for the multi-turn tests (``plugins: [tests.tiny_env]``): an environment the tiny model can play and a
reward that reads the episode."""
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
