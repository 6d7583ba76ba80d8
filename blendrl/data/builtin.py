"""Built-in prompt sets, generated deterministically in code (no download).

``concise`` / ``concise_eval``: "In at most N words, ..." questions about a topic; metadata carries the
``key_term`` (the topic) and ``max_words``. Train and eval topics are disjoint (held-out prompts).
"""
from __future__ import annotations

_TOPICS = [
    "volcano", "photosynthesis", "gravity", "democracy", "inflation", "vaccine", "glacier", "electricity",
    "rainbow", "earthquake", "bacteria", "magnet", "telescope", "recycling", "friction", "oxygen", "planet",
    "battery", "tornado", "algorithm", "coral reef", "desert", "thunder", "compass", "eclipse", "fossil",
    "hurricane", "microscope", "nutrition", "orbit", "password", "rainforest", "satellite", "tide", "vitamin",
    "wind turbine", "bridge", "calendar", "camera", "cloud", "comet", "dinosaur", "enzyme", "evaporation",
    "galaxy", "habitat", "iceberg", "internet", "language", "library", "lightning", "mammal", "map",
    "mountain", "museum", "ocean", "pyramid", "river", "robot", "seed", "solar panel", "spider", "star",
    "submarine", "sun", "vaccination", "volcanic ash", "weather", "whale", "wheel", "yeast", "bicycle",
    "honeybee", "moon", "penguin", "piano", "printer", "rocket", "snow", "thermometer",
]
_TEMPLATES = [
    "In at most {n} words, what is a {t}?",
    "In at most {n} words, explain {t} to a child.",
    "Answer in at most {n} words: why does {t} matter?",
    "Describe {t} in at most {n} words.",
]
_EVAL_EVERY = 5  # every 5th topic is held out


def _concise(held_out: bool) -> list[dict]:
    rows = []
    for i, topic in enumerate(_TOPICS):
        if (i % _EVAL_EVERY == 0) != held_out:
            continue
        for j, template in enumerate(_TEMPLATES):
            n = (8, 10, 12, 15)[(i + j) % 4]
            rows.append({"prompt": template.format(n=n, t=topic), "metadata": {"key_term": topic, "max_words": n}})
    return rows


BUILTIN_PROMPTS = {
    "concise": lambda: _concise(held_out=False),
    "concise_eval": lambda: _concise(held_out=True),
}


def _task_file(path):
    import json

    return lambda: [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _register_task_files() -> None:
    """The CGPO tasks written by ``scripts/make_cgpo_tasks.py``: ``builtin:math``, ``builtin:math_eval``,
    ``builtin:instructions[_eval]``, ``builtin:code[_eval]``, ``builtin:chat[_eval]``."""
    from pathlib import Path

    for path in sorted((Path(__file__).parent / "tasks").glob("*.jsonl")):
        BUILTIN_PROMPTS[path.stem] = _task_file(path)


_register_task_files()
