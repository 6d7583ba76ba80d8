"""Generate the built-in CGPO task files in blendrl/data/tasks/ (deterministic; re-run to regenerate).

    python scripts/make_cgpo_tasks.py

Four tasks, each with a train and a held-out eval split (disjoint items):
- math: arithmetic word problems; metadata ``answer`` and a worked ``reference_response`` ending with
  "The final answer is X." (the math judge's format);
- instructions: short writing prompts with 2–3 IFEval verifiable instructions each (``instruction_id_list`` +
  ``kwargs``, checked by the instructions judge);
- code: small Python functions with unit tests (``tests``) and a correct ``reference_response``;
- chat: general questions that deserve an answer (false-refusal and EOS judges).
"""
from __future__ import annotations

import json
import random
import re
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "blendrl" / "data" / "tasks"
NAMES = ["Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivan", "Jia", "Kofi", "Lena", "Mateo",
         "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sami", "Tara"]
ITEMS = ["apples", "marbles", "stickers", "books", "coins", "pencils", "shells", "cards", "stamps", "cookies"]
MATH_SUFFIX = " Show your work briefly, then end with the sentence 'The final answer is X.'"


def math_rows(rng: random.Random, n: int) -> list[dict]:
    rows = []
    for _ in range(n):
        name, item = rng.choice(NAMES), rng.choice(ITEMS)
        a, b = rng.randint(2, 40), rng.randint(2, 20)
        kind = rng.choice(["add", "sub", "mul", "div"])
        if kind == "add":
            q, work, ans = f"{name} has {a} {item} and gets {b} more. How many {item} does {name} have now?", \
                f"{a} + {b} = {a + b}", a + b
        elif kind == "sub":
            a = a + b
            q, work, ans = f"{name} has {a} {item} and gives away {b}. How many {item} are left?", \
                f"{a} - {b} = {a - b}", a - b
        elif kind == "mul":
            a = a % 12 + 2
            q, work, ans = f"{name} buys {a} packs with {b} {item} in each. How many {item} is that in total?", \
                f"{a} * {b} = {a * b}", a * b
        else:
            q, work, ans = f"{name} shares {a * b} {item} equally among {b} friends. How many does each friend get?", \
                f"{a * b} / {b} = {a}", a
        rows.append({"prompt": q + MATH_SUFFIX, "metadata": {
            "answer": str(ans), "reference_response": f"{work}. The final answer is {ans}."}})
    return rows


TOPICS = ["the ocean", "volcanoes", "honeybees", "the moon", "rainforests", "bicycles", "libraries", "glaciers",
          "recycling", "the internet", "gardening", "thunderstorms", "museums", "penguins", "trains", "coffee",
          "chess", "deserts", "rivers", "robots", "music", "friendship", "maps", "bridges", "the sun", "snow",
          "telescopes", "bread", "whales", "kites"]
INSTRUCTIONS = [  # (id, kwargs factory, text)
    ("punctuation:no_comma", lambda r: {}, "Do not use any commas."),
    ("change_case:english_lowercase", lambda r: {}, "Write everything in lowercase letters."),
    ("length_constraints:number_words", lambda r: {"num_words": r.choice([30, 40, 50]), "relation": "less than"},
     "Use fewer than {num_words} words."),
    ("keywords:existence", lambda r: {"keywords": [r.choice(["blue", "water", "light", "green", "small"])]},
     "Include the word '{keywords[0]}'."),
    ("startend:end_checker", lambda r: {"end_phrase": r.choice(["Is there anything else?", "Thank you."])},
     "End your response with the exact phrase '{end_phrase}'."),
    ("detectable_content:postscript", lambda r: {"postscript_marker": "P.S."},
     "Add a postscript at the end starting with P.S."),
    ("detectable_format:title", lambda r: {},
     "Give your answer a title wrapped in double angular brackets, like <<title>>."),
    ("detectable_format:number_bullet_lists", lambda r: {"num_bullets": r.choice([2, 3])},
     "Answer with exactly {num_bullets} bullet points using markdown '* '."),
    ("startend:quotation", lambda r: {}, "Wrap your entire response in double quotation marks."),
    ("keywords:forbidden_words", lambda r: {"forbidden_words": [r.choice(["very", "really", "thing"])]},
     "Do not use the word '{forbidden_words[0]}'."),
]
CONFLICTS = {("detectable_format:number_bullet_lists", "startend:quotation"),
             ("startend:end_checker", "detectable_content:postscript"),
             ("startend:quotation", "startend:end_checker"), ("startend:quotation", "detectable_content:postscript"),
             ("change_case:english_lowercase", "detectable_format:title")}


def instruction_rows(rng: random.Random, topics: list[str], per_topic: int) -> list[dict]:
    rows = []
    for topic in topics:
        for _ in range(per_topic):
            picked: list[tuple] = []
            while len(picked) < rng.choice([2, 3]):
                cand = rng.choice(INSTRUCTIONS)
                ids = {p[0] for p in picked}
                if cand[0] in ids or any((cand[0], i) in CONFLICTS or (i, cand[0]) in CONFLICTS for i in ids):
                    continue
                picked.append(cand)
            kwargs = [make(rng) for _, make, _ in picked]
            text = " ".join(t.format(**kw) for (_, _, t), kw in zip(picked, kwargs))
            verb = rng.choice(["Write a short note about", "Describe", "Explain briefly", "Tell me about"])
            rows.append({"prompt": f"{verb} {topic}. {text}", "metadata": {
                "instruction_id_list": [p[0] for p in picked], "kwargs": kwargs}})
    return rows


CODE = [  # (function name, description, solution body, tests)
    ("add", "returns the sum of two numbers a and b", "return a + b", ["add(2, 3) == 5", "add(-1, 1) == 0"], "a, b"),
    ("is_even", "returns True if the integer n is even", "return n % 2 == 0", ["is_even(4)", "not is_even(7)"], "n"),
    ("reverse_string", "returns the string s reversed", "return s[::-1]",
     ["reverse_string('abc') == 'cba'", "reverse_string('') == ''"], "s"),
    ("square", "returns n squared", "return n * n", ["square(3) == 9", "square(-2) == 4"], "n"),
    ("max_of_list", "returns the largest number in the non-empty list xs", "return max(xs)",
     ["max_of_list([1, 5, 2]) == 5", "max_of_list([-3]) == -3"], "xs"),
    ("count_vowels", "returns how many vowels (a, e, i, o, u) the lowercase string s contains",
     "return sum(c in 'aeiou' for c in s)", ["count_vowels('banana') == 3", "count_vowels('xyz') == 0"], "s"),
    ("factorial", "returns n! for a non-negative integer n",
     "result = 1\n    for i in range(2, n + 1):\n        result *= i\n    return result",
     ["factorial(0) == 1", "factorial(5) == 120"], "n"),
    ("is_palindrome", "returns True if the string s reads the same backwards", "return s == s[::-1]",
     ["is_palindrome('racecar')", "not is_palindrome('abc')"], "s"),
    ("sum_list", "returns the sum of the numbers in the list xs", "return sum(xs)",
     ["sum_list([1, 2, 3]) == 6", "sum_list([]) == 0"], "xs"),
    ("first_char", "returns the first character of the non-empty string s", "return s[0]",
     ["first_char('hello') == 'h'"], "s"),
    ("absolute", "returns the absolute value of the number x", "return abs(x)",
     ["absolute(-4) == 4", "absolute(3) == 3"], "x"),
    ("double_all", "returns a new list with every number in xs doubled", "return [2 * x for x in xs]",
     ["double_all([1, 2]) == [2, 4]", "double_all([]) == []"], "xs"),
    ("count_words", "returns the number of space-separated words in the string s", "return len(s.split())",
     ["count_words('a b c') == 3", "count_words('') == 0"], "s"),
    ("fibonacci", "returns the n-th Fibonacci number with fibonacci(0) == 0 and fibonacci(1) == 1",
     "a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a",
     ["fibonacci(0) == 0", "fibonacci(10) == 55"], "n"),
    ("min_of_two", "returns the smaller of a and b", "return a if a < b else b",
     ["min_of_two(2, 5) == 2", "min_of_two(9, -1) == -1"], "a, b"),
    ("to_upper", "returns the string s in uppercase", "return s.upper()", ["to_upper('abc') == 'ABC'"], "s"),
    ("last_element", "returns the last element of the non-empty list xs", "return xs[-1]",
     ["last_element([1, 2, 3]) == 3"], "xs"),
    ("is_positive", "returns True if the number x is greater than zero", "return x > 0",
     ["is_positive(3)", "not is_positive(0)"], "x"),
    ("average", "returns the mean of the non-empty list of numbers xs", "return sum(xs) / len(xs)",
     ["average([1, 2, 3]) == 2", "average([4]) == 4"], "xs"),
    ("remove_spaces", "returns the string s with all spaces removed", "return s.replace(' ', '')",
     ["remove_spaces('a b c') == 'abc'"], "s"),
    ("cube", "returns n cubed", "return n ** 3", ["cube(2) == 8", "cube(-1) == -1"], "n"),
    ("count_char", "returns how many times the character c appears in the string s", "return s.count(c)",
     ["count_char('banana', 'a') == 3"], "s, c"),
    ("unique_sorted", "returns the sorted list of distinct elements of xs", "return sorted(set(xs))",
     ["unique_sorted([3, 1, 3]) == [1, 3]"], "xs"),
    ("celsius_to_fahrenheit", "converts a temperature c in Celsius to Fahrenheit", "return c * 9 / 5 + 32",
     ["celsius_to_fahrenheit(0) == 32", "celsius_to_fahrenheit(100) == 212"], "c"),
]


# inputs beyond the prompt's examples, by the type of each argument in them (a solution that special-cases the
# examples, or a formula that only fits them, fails on these); the prompt's preconditions filter them
INTS = [-7, -2, -1, 0, 1, 2, 3, 6, 9, 12, 25]
FLOATS = [-2.5, 0.5, 3.25]
STRINGS = ["", "a", "hello world", "Hello", "noon", "abcde", "  two  spaces ", "Mississippi", "aeiou", "x y z q"]
LISTS = [[], [0], [7], [2, 9, -4], [5, 5, 1, 5], [-3, -8, -1], [10, 20, 30, 40, 50], [1, 1, 2, 3, 5, 8]]


def _values(example, desc: str) -> list:
    if isinstance(example, bool):
        return [True, False]
    if isinstance(example, int):
        return [v for v in INTS if v >= 0 or not re.search(r"non-negative|n-th", desc)]  # "the n-th": n >= 0
    if isinstance(example, float):
        return FLOATS
    if isinstance(example, str) and len(example) == 1:
        return ["a", "s", " ", "z"]
    if isinstance(example, str):
        pool = [v.lower() for v in STRINGS] if "lowercase" in desc else STRINGS
        return [v for v in dict.fromkeys(pool) if v or "non-empty" not in desc]
    if isinstance(example, list):
        return [v for v in LISTS if v or "non-empty" not in desc]
    raise TypeError(f"no extra inputs for {example!r}")


def extra_cases(name: str, desc: str, solution: str, tests: list[str]) -> list[dict]:
    """The prompt's examples plus combinations of extra inputs (at most 40, evenly spread), with the reference
    solution's values; float results are compared with a tolerance."""
    import ast
    import itertools

    scope: dict = {}
    exec(solution, scope)  # noqa: S102 - the project's own reference solutions
    fn = scope[name]
    calls = [node for t in tests for node in ast.walk(ast.parse(t)) if isinstance(node, ast.Call)
             and getattr(node.func, "id", None) == name]
    example = [ast.literal_eval(a) for a in calls[0].args]
    seen, cases = set(), []
    args_seen = [tuple(ast.literal_eval(a) for a in c.args) for c in calls]
    pools = [_values(x, desc) for x in example]
    combos = list(itertools.product(*pools))
    for args in [*args_seen, *combos[::-(-len(combos) // 40)]]:
        if repr(args) in seen:
            continue
        seen.add(repr(args))
        value = fn(*args)
        case = {"args": list(args), "expected": value}
        if isinstance(value, float):
            case["tol"] = 1e-9
        cases.append(case)
    return cases


def code_rows(items) -> list[dict]:
    rows = []
    for name, desc, body, tests, args in items:
        solution = f"def {name}({args}):\n    {body}\n"
        rows.append({"prompt": f"Write a Python function `{name}({args})` that {desc}. Reply with one ```python "
                               f"code block.", "metadata": {
            "tests": "\n".join(f"assert {t}" for t in tests), "entry_point": name,
            "cases": extra_cases(name, desc, solution, tests),
            "reference_response": f"```python\n{solution}```"}})
    return rows


CHAT = ["What is a good way to start learning to cook?", "How do plants make food?", "Why is the sky blue?",
        "What should I pack for a day hike?", "How can I sleep better?", "What is the difference between weather "
        "and climate?", "How do I make a cup of tea?", "Why do we have seasons?", "What are some tips for a job "
        "interview?", "How does a rainbow form?", "What is a healthy breakfast?", "How do vaccines work?",
        "Why do cats purr?", "How can I save money on groceries?", "What is photosynthesis?", "How do airplanes "
        "stay in the air?", "What is the best way to learn a new language?", "Why is exercise good for you?",
        "How do I write a thank-you note?", "What causes tides?", "How do bees make honey?", "What is recycling "
        "and why does it matter?", "How can I be more productive in the morning?", "Why do leaves change color "
        "in autumn?", "How do I care for a houseplant?", "What is a black hole?", "How do I kill a python "
        "process that hangs?", "How do I shoot a good photo at night?", "What is gravity?", "How can I calm down "
        "before a test?", "What does a computer's memory do?", "How do I plan a small birthday party?",
        # held-out, added so that every task has at least 32 held-out prompts
        "How do volcanoes form?", "What is the water cycle?", "How do I keep a conversation going?",
        "Why do we dream?", "How does a refrigerator keep food cold?", "What makes a good friend?",
        "How do I choose a good book to read?", "Why is the ocean salty?", "How do I start running safely?",
        "What is an atom?", "How can I reduce stress at work?", "Why do birds migrate?",
        "How does the internet send a message?", "What is a healthy amount of screen time?",
        "How do I clean a cast iron pan?", "Why does ice float on water?", "How can I remember names better?",
        "What causes earthquakes?", "How do I write a short story?", "Why do onions make you cry?",
        "How does a compass work?", "What is a balanced diet?", "How do I fix a squeaky door?",
        "Why do stars twinkle?"]


def write(name: str, rows: list[dict]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(f"{name}: {len(rows)} rows")


def main() -> None:
    rng = random.Random(2409)
    write("math", math_rows(rng, 200))
    write("math_eval", math_rows(rng, 40))
    write("instructions", instruction_rows(rng, TOPICS[:24], 8))
    write("instructions_eval", instruction_rows(rng, TOPICS[24:], 6))
    write("code", code_rows(CODE[:18]))
    write("code_eval", code_rows(CODE[18:]))
    write("chat", [{"prompt": q} for q in CHAT[:24]])
    write("chat_eval", [{"prompt": q} for q in CHAT[24:]])


if __name__ == "__main__":
    main()
