"""Built-in prompt sets, generated deterministically in code (no download).

``concise`` / ``concise_eval``: "In at most N words, ..." questions about a topic; metadata carries the
``key_term`` (the topic) and ``max_words``. Train and eval topics are disjoint (held-out prompts).

``arithmetic`` / ``arithmetic_eval``: word problems over two- and three-digit numbers (a product, then a sum or a
difference, or an exact quotient), too long to work out in a small model's head and exact with the calculator
tool (examples/ppo_calculator.yaml); metadata carries the ``answer``, the ``expression`` that computes it and a
``reference_response``. No problem of the eval set is in the train set.
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


_ARITHMETIC = [  # (question, expression, its value) over a, b, c drawn per problem
    ("A shop has {a} crates with {b} apples in each and sells {c} apples. How many apples are left?",
     "{a} * {b} - {c}", lambda a, b, c: a * b - c),
    ("A printer prints {a} pages an hour for {b} hours, then {c} more pages. How many pages does it print?",
     "{a} * {b} + {c}", lambda a, b, c: a * b + c),
    ("A farm packs {a} boxes of {b} eggs and has {c} loose eggs. How many eggs are there in all?",
     "{a} * {b} + {c}", lambda a, b, c: a * b + c),
    ("A school orders {a} packs of {b} pencils and gives {c} pencils away. How many pencils does it keep?",
     "{a} * {b} - {c}", lambda a, b, c: a * b - c),
    ("{ab} stickers are shared equally by {a} children. How many stickers does each child get?",
     "{ab} / {a}", lambda a, b, c: b),
]
_ARITHMETIC_SUFFIX = " Show your work briefly, then end with the sentence 'The final answer is X.'"


def _arithmetic(held_out: bool) -> list[dict]:
    import random

    rng, seen, rows = random.Random(0), set(), {False: [], True: []}
    while len(rows[held_out]) < (40 if held_out else 200):
        question, form, value = _ARITHMETIC[rng.randrange(len(_ARITHMETIC))]
        a, b, c = rng.randint(13, 98), rng.randint(12, 97), rng.randint(101, 999)
        if (question, a, b, c) in seen or a * b <= c:
            continue
        seen.add((question, a, b, c))
        expression, answer = form.format(a=a, b=b, c=c, ab=a * b), str(value(a, b, c))
        rows[rng.random() < 1 / 6].append({"prompt": question.format(a=a, b=b, c=c, ab=a * b) + _ARITHMETIC_SUFFIX,
                                           "metadata": {"answer": answer, "expression": expression,
                                                        "reference_response": f"{expression} = {answer}. The final "
                                                                              f"answer is {answer}."}})
    return rows[held_out]


BUILTIN_PROMPTS = {
    "concise": lambda: _concise(held_out=False),
    "concise_eval": lambda: _concise(held_out=True),
    "arithmetic": lambda: _arithmetic(held_out=False),
    "arithmetic_eval": lambda: _arithmetic(held_out=True),
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
