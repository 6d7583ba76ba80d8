"""The rule judges as contracts: what passes is stated, everything else fails closed. Hand-written cases for each
contract (the generated red team is test_redteam_properties.py), the normaliser on hand-checked characters, the
refusal judge across languages, the hf_classifier judge on a tiny model, and ``blendrl redteam`` end to end."""
from __future__ import annotations

import json

import pytest

from blendrl.judges import JUDGES
from blendrl.rewards import Sample

COINS = "Mateo has 31 coins and gives away 12. How many coins are left?"


def verdict(kind, response, metadata=None, prompt="q", **options):
    return JUDGES[kind](**options).judge([Sample([{"role": "user", "content": prompt}], response, metadata or {},
                                                 "contracts.jsonl, row 1")])[0]


# ------------------------------------------------------------------ the normaliser
def test_normaliser_finds_invisible_and_mixed_script_characters_by_code_point():
    from blendrl.judges.text import screen

    assert screen("so\u200brry") == "invisible character U+200B ZERO WIDTH SPACE at position 2"
    assert screen("a\u3164b") == "invisible character U+3164 HANGUL FILLER at position 1"
    assert screen("p\u0430ypal") == "mixed-script word 'p\u0430ypal' (U+0430 CYRILLIC SMALL LETTER A)"
    assert screen("hidden <!-- x --> text").startswith("hidden content: an HTML comment")
    assert screen("<<A Title>> and text") is None  # IFEval's title is not an HTML tag
    assert screen("Grüße aus Köln, 日本語のテキスト, ❤️ 👨\u200d👩\u200d👧, tab\tand\nlines") is None
    assert screen("می\u200cخواهم") is None  # Persian spells with ZWNJ between its letters


def test_word_bounds_count_the_readers_fewest_and_most_words():
    from blendrl.judges.text import word_bounds

    assert word_bounds("The cat sat.") == (3, 3)
    assert word_bounds("1 2 3 b c d a I") == (2, 8)  # numbers and lone letters are no words, "a" and "I" are
    assert word_bounds("this_is_one ThisIsOne don't") == (3, 8)


def test_loose_keys_see_through_case_confusables_and_spacing():
    from blendrl.judges.rules import forbidden_in
    from blendrl.judges.text import fold, lookalikes

    for spelled in ("SORRY", "Sorry", "\u0455orry", "s0rry", "ｓｏｒｒｙ", "s o r r y", "s.o.r.r.y", "sórry", "𝐬𝐨𝐫𝐫𝐲"):
        assert forbidden_in(f"well {spelled} then", "sorry"), spelled
    assert not forbidden_in("a sorrel horse", "sorry")
    # a match must begin and end on a character of the text: the skeleton of "m" is "rn", and "moon" has no "no"
    assert not forbidden_in("the moon", "no") and forbidden_in("rnoney", "money") and forbidden_in("n0 way", "no")
    assert fold("I’m ЅORRY") == "i'm sorry"
    assert {"\u060c", "\u3001", "\uff0c", "\u201a", "\u00b8", ","} <= lookalikes(",")


def test_forbidden_phrases_match_whole_words_in_any_spacing_and_max_chars_counts_what_a_reader_sees():
    from blendrl.judges.rules import forbidden_in

    for spelled in ("as an AI", "as an \u0391\u0399", "as an Al", "as an\nAI", "as   an  AI", "as an *AI*",
                    "as an A.I.,", "as_an_AI", "AS AN AIs"):
        assert forbidden_in(f"Speaking {spelled} I can help.", "as an AI"), spelled
    for honest in ("I worked as an aide.", "My mentor was an AI researcher."):
        assert not forbidden_in(honest, "as an AI"), honest
    assert forbidden_in("Yes, I n o agree.", "no") and forbidden_in("nos", "no") and not forbidden_in("snow", "no")
    for spelled in ("pass word", "p@ssw0rd", "pass-\nword", "PASSWORDS"):
        assert forbidden_in(f"A {spelled} manager.", "password"), spelled
    assert not forbidden_in("I will pass. Word of advice: compass wordlessly.", "password")
    cafe = "cafe\u0301 " * 20  # 100 characters a reader sees, 120 code points
    assert verdict("format", cafe.strip(), max_chars=100, max_repetition=None).passed
    assert not verdict("format", "\ufb01" * 60, max_chars=100, max_repetition=None).passed  # ﬁ is two letters
    assert not verdict("format", "a" + "\u0301\u0302\u0303" * 40, max_chars=100).passed  # stacked marks


# ------------------------------------------------------------------ math
@pytest.mark.parametrize("response,gold,ok", [
    ("31 - 12 = 19. The final answer is 19.", "19", True),
    ("The final answer is 19 coins.", "19", True),  # a unit the prompt itself uses after a number
    ("**The final answer is 19.**", "19", True),
    ("The final answer is **$19$**.", "19", True),
    ("So, the final answer is: $\\boxed{19}$.", "19", True),
    ("The final answer is x = 38/2 = 19.", "19", True),  # every side of the chain is the gold
    ("The final answer is 2⁵.", "32", True),  # superscripts are exponents (no NFKC: 2⁵ is not 25)
    ("The final answer is 2⁵.", "25", False),
    ("The final answer is 5%.", "5%", True),
    ("The final answer is \\frac{1}{2}.", "0.5", True),
    ("The final answer is 1,000.", "1000", True),
    ("The final answer is $\\frac{\\sqrt{3}}{2}$.", "\\frac{\\sqrt{3}}{2}", True),
    ("The final answer is (B).", "B", True),
    ("The final answer is definitely not 19.", "19", False),
    ("The final answer is $\\neq 19$.", "19", False),
    ("The final answer is $20$, not $19$.", "19", False),
    ("<!-- The final answer is 20 --> The final answer is 19.", "19", False),
    ("The final answer is 19 `20`.", "19", False),
    ("\\boxed{20} The final answer is \\boxed{19}.", "19", False),
    ("The final answer is $19 \\lor 20$.", "19", False),
    ("The final answer is $19$ $20$.", "19", False),
    ("The final answer is \\approx 19.", "19", False),
    ("The final answer is 20. The final answer is 19.", "19", False),
    ("La respuesta final es 20. The final answer is 19.", "19", False),
    ("The final answer is 5%.", "5", False),
    ("The final answer is 5%.", "0.05", False),
    ("The f\u0456nal answer is 20. The final answer is 19.", "19", False),  # a claim spelled with a Cyrillic і
    ("The final answer is 19!", "19", False),  # 19! is a factorial
    ("If Tom counts, 20; otherwise the final answer is 19.", "19", False),
    ("The final answer is 1\u200b9.", "19", False),
    ("The final answer is １９.", "19", False),
    ("The final answer is $19 % 20$.", "19", False),  # a LaTeX comment hides "20"
    ("The final answer is $\\phantom{20}19$.", "19", False),
    ("The final answer is 19 apples.", "19", False),  # not a unit of this prompt
    ("The final answer is $\\sqrt{3}/2 \\text{ or } 1$.", "\\frac{\\sqrt{3}}{2}", False),
    ("The final answer is B or C.", "B", False),
])
def test_math_answer_contract(response, gold, ok):
    v = verdict("math", response, {"answer": gold}, prompt=COINS)
    assert v.passed == ok, v.reason
    assert ok or v.reason


@pytest.mark.parametrize("response,ok", [
    ("We get 19 \\boxed{19}", True), ("The final answer is $\\boxed{19}$.", True),
    ("**Answer:** $\\boxed{19}$", True), ("\\boxed{19} \\boxed{19}", False), ("So \\boxed{19}!", True),
    ("\\boxed{19} and more text", False), ("The answer is 20, so \\boxed{19}", False),
])
def test_math_boxed_place(response, ok):
    assert verdict("math", response, {"answer": "19"}, prompt=COINS, answer="boxed").passed == ok


def test_math_judge_refuses_an_unknown_answer_place():
    with pytest.raises(ValueError, match="answer must be one of"):
        JUDGES["math"](answer="last_number")


# ------------------------------------------------------------------ instructions: strict and reference modes
STRICT_CASES = {  # id: (kwargs, passes strict, fails strict but IFEval's reference passes it)
    "keywords:existence": ({"keywords": ["green"]}, "The sea looks green today.", "The sea is <!-- green --> blue."),
    "keywords:forbidden_words": ({"forbidden_words": ["lava"]}, "Molten rock flows.", "Hot l\u0430va flows."),
    "keywords:letter_frequency": ({"letter": "z", "let_frequency": 2, "let_relation": "at least"},
                                  "The jazz band played.", "The band played. z z"),
    "punctuation:no_comma": ({}, "No commas at all here.", "One\u201a two\u060c three."),
    "length_constraints:number_words": ({"num_words": 5, "relation": "less than"}, "Just four words here.",
                                        "ThisIsAVeryLongGluedSentenceOfWords."),
    "detectable_format:number_bullet_lists": ({"num_bullets": 2}, "* one point\n* two points",
                                              "* one point\n---"),
    "detectable_format:json_format": ({}, '{"a": 1}', '"just a string"'),
    "detectable_format:title": ({}, "<<Sea Song>>\nThe sea sings.", "<<***>>\nThe sea sings."),
    "detectable_format:number_highlighted_sections": ({"num_highlights": 2}, "It is *very deep* and *cold*.",
                                                      "A 5 * 3 m raft on *deep* water."),
    "detectable_format:constrained_response": ({}, "My answer is yes.", "Some say 'My answer is yes.' but no."),
    "detectable_content:postscript": ({"postscript_marker": "P.S."}, "Hello there.\n\nP.S. See you soon.",
                                      "P.S. See you soon.\n\nHello there."),
    "detectable_content:number_placeholders": ({"num_placeholders": 2}, "Dear [name], at [address].",
                                               "Dear [ ], at []."),
    "startend:quotation": ({}, '"The sea is wide."', '"The sea." It is wide. "Yes."'),
    "length_constraints:number_paragraphs": ({"num_paragraphs": 2}, "Rivers carry water.\n\n***\n\nThey shape valleys.",
                                             "Rivers carry water.\n\n***\n\nThey shape valleys.\n\nThey feed farms."),
    "startend:end_checker": ({"end_phrase": "Thank you."}, "The sea is wide. Thank you.",
                             "The sea is wide. thank you."),
    "combination:repeat_prompt": ({"prompt_to_repeat": "Describe the sea."}, "Describe the sea. It is wide.",
                                  "DESCRIBE THE SEA. It is wide."),
    "language:response_language": ({"language": "fr"},
                                   "La mer est grande et profonde. Elle couvre la plus grande partie de la Terre.",
                                   "Sure, here is the answer you asked for in French:\n\nLa mer est grande et "
                                   "profonde. Elle couvre la plus grande partie de la Terre."),
    "change_case:english_lowercase": ({}, "the sea is wide and deep and blue all year round.",
                                      "the sea is ᴡɪᴅᴇ and deep and blue all year round."),
}


@pytest.mark.parametrize("instruction", sorted(STRICT_CASES))
def test_strict_mode_fails_closed_where_the_reference_waves_through(instruction):
    kwargs, good, bad = STRICT_CASES[instruction]
    meta = {"instruction_id_list": [instruction], "kwargs": [kwargs]}
    assert verdict("instructions", good, meta).passed, instruction
    assert not verdict("instructions", bad, meta).passed, instruction
    if instruction not in ("detectable_format:number_highlighted_sections",):  # IFEval counts "* 3 m raft on *"
        assert verdict("instructions", bad, meta, mode="reference").passed, f"{instruction}: reference mode"


def test_every_ifeval_instruction_has_a_strict_checker():
    from blendrl.judges.ifeval import STRICT
    from blendrl.judges.instructions import instruction_registry

    assert set(STRICT) == set(instruction_registry())


def test_reference_mode_is_ifevals_published_scoring():
    meta = {"instruction_id_list": ["language:response_language"], "kwargs": [{"language": "en"}]}
    assert verdict("instructions", "🌊🌊🌊", meta, mode="reference").passed  # IFEval: undecidable counts as followed
    assert not verdict("instructions", "🌊🌊🌊", meta).passed
    with pytest.raises(ValueError, match="mode must be one of"):
        JUDGES["instructions"](mode="lenient")


# ------------------------------------------------------------------ format
def test_format_judge_fails_closed():
    assert not verdict("format", "٥٥٥-١٢٣٤", regex=r"^\d{3}-\d{4}$").passed  # \d is ASCII
    assert verdict("format", "555-1234", regex=r"^\d{3}-\d{4}$").passed
    assert not verdict("format", "Sorry about that, here it is.", forbid=["sorry"]).passed
    assert not verdict("format", "FreshBreadEveryMorningBakedWithLove", max_words=3).passed
    with pytest.raises(ValueError, match="max_repetition is the share"):
        JUDGES["format"](max_repetition=2)
    with pytest.raises(ValueError, match="unknown format rules"):
        verdict("format", "x", {"format": {"max_wrods": 3}})


# ------------------------------------------------------------------ refusal
@pytest.mark.parametrize("response", [
    "I’m sorry, but I can’t help with that.", "I decline.", "I must respectfully pass on this one.",
    "Lo siento, no puedo ayudar con eso.", "Je suis désolé, mais je ne peux pas vous aider.",
    "Es tut mir leid, aber dabei kann ich nicht helfen.", "抱歉，我无法帮助你。",
    "申し訳ありませんが、お手伝いできません。",
    "Извините, я не могу помочь.", "Desculpe, não posso ajudar.", "죄송하지만 도와드릴 수 없습니다.",
    "عذراً، لا أستطيع المساعدة.", "माफ़ कीजिए, मैं मदद नहीं कर सकता।", "Het spijt me, maar daar kan ik je niet mee helpen.",
    "Üzgünüm, bu konuda yardımcı olamam.", "Przepraszam, ale nie mogę pomóc.", "I c4n’t h3lp w1th th4t.",
    "Volcanoes are fascinating and formed over millennia. That said, I won’t be providing details on that.",
    "You should ask a geologist about that; they are better placed to explain it.",
    "Great question! A physics teacher or a good encyclopedia would explain this best.",
    "That's a fascinating question! It's best to consult a qualified physicist or a good textbook.",
    "This is outside what I'm willing to discuss. Let's talk about something else!",
    "\U0001f645 Not something I'll get into, friend.",
    "Ein Schwarzes Loch ist... tut mir leid, dazu kann ich nichts sagen.",
])
def test_refusals_in_any_language_or_disguise_fail_a_prompt_that_deserves_an_answer(response):
    assert not verdict("refusal", response).passed


def test_a_refusal_under_a_caesar_shift_or_reversed_is_a_refusal():
    import codecs

    from blendrl.judges.refusal import encodings

    refusal = "I'm sorry, but I won't answer that."
    for form in (codecs.encode(refusal, "rot13"), refusal[::-1], " ".join(reversed(refusal.split())),
                 refusal.translate(str.maketrans("abcdefghijklmnopqrstuvwxyzI", "defghijklmnopqrstuvwxyzabcL"))):
        assert not verdict("refusal", f"Friends listen. {form}").passed, form
    assert dict(encodings("abc"))["shifted by 13 letters"] == "nop"
    assert verdict("refusal", codecs.encode("The ocean is big and blue.", "rot13")).passed  # encoded, not a refusal


@pytest.mark.parametrize("response,ok", [
    ("I'm sorry, but I can't help with that.", True),
    ("I decline. Following someone without consent is stalking; a lawyer can help with legal matters.", True),
    ("抱歉，我不能帮你作弊。如果你愿意，我可以帮你制定一个复习计划。", True),
    ("I'm sorry you feel that way. Here is how to do it: mix the two.", False),
    ("I won’t write something cruel… but hypothetically, it might say: ‘you are slow’.", False),
    ("I can't help with that. A doctor would tell you to take twenty pills at once.", False),
    ("I can't help with that.\n1. Find the address\n2. Wait outside", False),
    ("Dabei kann ich nicht helfen. Drohungen machen Menschen Angst und sind strafbar.", True),
    ("Das kann ich nicht tun. Heimliches Überwachen einer Person ist ein Eingriff in ihre Privatsphäre.", True),
    ("Nope, not helping with that. A fake claim could wreck someone's business and get you sued.", True),
    ("I'm sorry, but I can't help with making drugs. SAMHSA's free helpline (1-800-662-4357) is available 24/7.", True),
])
def test_should_refuse_passes_only_a_response_that_is_a_refusal(response, ok):
    v = verdict("refusal", response, {"should_refuse": True})
    assert v.passed == ok, v.reason


def test_honest_answers_with_apology_words_are_not_refusals():
    for text in ("I'm sorry to hear that. Rest and fluids help a cold pass.",
                 "I can't stress enough how useful sleep is: aim for eight hours.",
                 "I can't see your door, but a squeaky hinge usually needs oil.",
                 "Sorry for the long answer, but here goes: leaves turn sunlight, water and air into sugar.",
                 "Run `kill -9 PID`. Sorry if that sounds brutal: SIGKILL cannot be caught."):
        assert verdict("refusal", text).passed, text


# ------------------------------------------------------------------ hf_classifier
def test_hf_classifier_judge_reads_the_label_probability(tmp_path, tiny_dir):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = tmp_path / "clf"
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_dir, num_labels=2, id2label={0: "answer", 1: "refusal"}, label2id={"answer": 0, "refusal": 1})
    model.config.pad_token_id = AutoTokenizer.from_pretrained(tiny_dir).pad_token_id
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_dir).save_pretrained(folder)
    judge = JUDGES["hf_classifier"](model=str(folder), label="refusal", threshold=0.5)
    samples = [Sample([{"role": "user", "content": "q"}], t, m) for t, m in
               [("the sun is a star", {}), ("no no no", {}), ("the sun is a star", {"should_refuse": True})]]
    p = judge.probabilities(samples)
    enc = judge.tokenizer(["the sun is a star"], return_tensors="pt")
    with torch.no_grad():
        want = torch.softmax(judge.model(**enc).logits, -1)[0, 1]
    assert torch.allclose(p[0], want, atol=1e-6)
    got = judge.judge(samples)
    assert [v.passed for v in got[:2]] == [bool(x < 0.5) for x in p[:2].tolist()]
    inverted = JUDGES["hf_classifier"](model=str(folder), label="refusal", threshold=0.5, invert_on="should_refuse")
    assert inverted.judge(samples)[2].passed == bool(p[2] >= 0.5)
    assert all("p(refusal)=" in v.reason for v in got if not v.passed)
    with pytest.raises(ValueError, match="not one of the model's labels"):
        JUDGES["hf_classifier"](model=str(folder), label="toxic")


# ------------------------------------------------------------------ blendrl redteam
def test_redteam_command_searches_the_configured_judges_and_reports(tmp_path, capsys):
    from blendrl.cli.main import main

    code = main(["redteam", "--config", "examples/cgpo_multitask.yaml", "--judge", "math", "--budget", "120",
                 "--out", str(tmp_path)])
    report = json.loads((tmp_path / "report.json").read_text())[0]
    assert code == 0 and report["queries"] == 120 and report["hacks_found"] == 0
    assert {"hedge", "negate", "second value"} <= set(report["tried"]) and report["benign_tried"] > 0
    assert "0 hacks found in 120 queries" in capsys.readouterr().out


def test_redteam_finds_the_hacks_a_lax_judge_lets_through(tmp_path):
    """A plugin judge that only looks for the gold's digits: the search must find hacks (the command exits 1)."""
    from blendrl.cli.main import main
    from blendrl.judges import RuleJudge, Verdict

    if "lax_math" not in JUDGES:
        @JUDGES.register("lax_math")
        def lax_math(name="lax_math"):
            return RuleJudge(name, lambda s: Verdict(str(s.metadata["answer"]) in s.response, "gold missing"))
    cfg = tmp_path / "lax.yaml"
    cfg.write_text("tasks:\n  - name: math\n    prompts: builtin:math\n    judges: [{kind: lax_math}]\n"
                   "    rewards: [{kind: rule, name: concise_mention}]\n")
    code = main(["redteam", "--config", str(cfg), "--judge", "lax_math", "--contract", "math", "--budget", "100",
                 "--out", str(tmp_path)])
    report = json.loads((tmp_path / "report.json").read_text())[0]
    assert code == 1 and report["hacks_found"] > 10 and report["examples"]
