"""C2RM (docs/algorithms.md §5): self-consistency, the four classes and the pair recipes on hand-made answers;
``blendrl rm c2rm`` turns sampled math answers into pairs that ``blendrl rm train`` trains a reward source on."""
import pytest
import torch

from blendrl.functional.c2rm import C2RM_RECIPES, c2rm_class, self_consistency


def test_self_consistency_and_classes_on_hand_answers():
    answers = ["19", "19", "18", "19", None]
    conf = self_consistency(answers, lambda a, b: a == b)
    assert conf == [0.75, 0.75, 0.25, 0.75, 0.0]  # 3 of the 4 valid answers say 19; no answer → 0
    correct = [True, True, False, True, False]
    classes = [c2rm_class(ok, c) for ok, c in zip(correct, conf)]
    assert classes == [1, 1, 4, 1, 4]
    four = [c2rm_class(True, 0.5), c2rm_class(False, 0.5), c2rm_class(True, 0.4), c2rm_class(False, 0.4)]
    assert four == [1, 2, 3, 4]


def test_recipes_pair_the_classes_as_the_paper_and_its_ablations():
    classes = [1, 2, 3, 4]
    assert C2RM_RECIPES["c2rm"](classes) == [(0, 1), (0, 2), (0, 3)]  # correct but unconfident is rejected
    assert C2RM_RECIPES["correctness"](classes) == [(0, 1), (0, 3), (2, 1), (2, 3)]
    assert C2RM_RECIPES["confidence"](classes) == [(0, 2), (0, 3), (1, 2), (1, 3)]


def test_answers_are_read_and_compared_by_value():
    from blendrl.eval.c2rm import extract_answer, same_answer

    assert extract_answer("31 - 12 = 19. The final answer is 19.", "final_sentence") == "19"
    assert extract_answer("it is 19, I think", "final_sentence") is None
    assert extract_answer("31 - 12 = 19, so 19 coins", "last_number") == "19"
    assert same_answer("0.5", "1/2") and not same_answer("19", "18") and same_answer("x", "x")


def test_c2rm_builds_pairs_from_sampled_answers_and_a_reward_model_trains_on_them(tiny_dir, rm_tiny_dir, tmp_path,
                                                                                    monkeypatch):
    from blendrl.config import load_config
    from blendrl.config.rm_schema import RMRunConfig
    from blendrl.data import DataError, load_prompts
    from blendrl.eval import c2rm
    from blendrl.rewards import HFRewardModel, Sample
    from blendrl.training.rm import run as rm_run
    from tests.tiny import build_tokenizer

    golds = iter(p.metadata["answer"] for p in load_prompts("builtin:math", build_tokenizer(), 512)[0][:3])

    def canned(tok, out):  # one prompt per call (batch_prompts 1): right ×3 (one of them wordy), off by one, none
        g = next(golds)
        return [f"The final answer is {g}.", f"so {g} . The final answer is {g}.", f"The final answer is {int(g) + 1}.",
                f"The final answer is {g}.", "no idea"]

    monkeypatch.setattr(c2rm, "decode_responses", canned)
    cfg = load_config(RMRunConfig, None, [
        f"c2rm.policy={tiny_dir}", "c2rm.limit=3", "c2rm.k=5", "c2rm.max_new_tokens=4", "c2rm.batch_prompts=1",
        f"c2rm.output={tmp_path}/pairs.jsonl", "c2rm.max_pairs_per_prompt=4"])
    questions = c2rm.sample_questions(cfg.c2rm)
    for q in questions:
        assert q.correct == [True, True, False, True, False]
        assert len(q.finished) == 5 and all(isinstance(f, bool) for f in q.finished)  # EOS flags for make_samples
        assert q.confidence == [0.75, 0.75, 0.25, 0.75, 0.0] and q.classes == [1, 1, 4, 1, 4]
    rows = c2rm.question_pairs(questions, "c2rm", 4, 0)
    assert len(rows) == 12 and all(r["chosen_class"] == 1 and r["rejected_class"] == 4 for r in rows)  # 6 → 4 each
    assert len(c2rm.question_pairs(questions, "correctness", None, 0)) == 3 * 6
    monkeypatch.setattr(c2rm, "decode_responses", lambda tok, out: ["no idea"] * len(out.response_ids))
    with pytest.raises(DataError, match=r"no pairs .*\{1: 0, 2: 0, 3: 0, 4: 15\}.* recipe 'confidence'"):
        c2rm.build_c2rm_pairs(load_config(RMRunConfig, None, [
            f"c2rm.policy={tiny_dir}", "c2rm.limit=3", "c2rm.batch_prompts=1", "c2rm.recipe=confidence",
            "c2rm.max_new_tokens=4", f"c2rm.output={tmp_path}/none.jsonl"]).c2rm)
    path = tmp_path / "pairs.jsonl"
    from blendrl.data.preferences import write_preferences

    write_preferences(rows, path)
    rm_cfg = load_config(RMRunConfig, None, [
        f"model.name={rm_tiny_dir}", f"data.train={path}", "data.eval=null", "train.epochs=1",
        "train.batch_size=4", "train.micro_batch_size=4", f"logging.output_dir={tmp_path}/rm",
        "logging.tensorboard=false", "logging.progress=false"])
    final = rm_run.train_rm(rm_cfg)["final"]  # the confidence-aware RM is a plain hf_rm reward source
    scores = HFRewardModel(str(final)).score([Sample(rows[0]["prompt"], r, {}, "") for r in ("a", "b")]).total
    assert scores.shape == (2,) and torch.isfinite(scores).all()
