"""Preference data: the shapes people have (plain, UltraFeedback, HH-RLHF; jsonl/json/parquet/datasets folders),
bad rows named by file, row and field, truncation counted, and the synthetic noisy task."""
import json

import pytest

from blendrl.data import DataError
from blendrl.data.pair_encoding import encode_pairs, pad_right
from blendrl.data.preferences import load_preferences, parse_pair, write_preferences
from blendrl.data.synthetic import make_pairs, true_score
from tests.tiny import build_tokenizer

HH = {"chosen": "\n\nHuman: hi there\n\nAssistant: hello\n\nHuman: what is a cat?\n\nAssistant: a small animal",
      "rejected": "\n\nHuman: hi there\n\nAssistant: hello\n\nHuman: what is a cat?\n\nAssistant: no idea"}
UF = {"prompt": "what is a dog?",
      "chosen": [{"role": "user", "content": "what is a dog?"}, {"role": "assistant", "content": "an animal"}],
      "rejected": [{"role": "user", "content": "what is a dog?"}, {"role": "assistant", "content": "a rock"}],
      "score_chosen": 8.0}


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_plain_ultrafeedback_and_hh_rows_normalise_to_the_same_shape():
    plain = parse_pair({"prompt": "q?", "chosen": "a", "rejected": "b"}, "f, row 1")
    assert plain.prompt == [{"role": "user", "content": "q?"}] and (plain.chosen, plain.rejected) == ("a", "b")
    uf = parse_pair(UF, "f, row 2")
    assert uf.prompt == [{"role": "user", "content": "what is a dog?"}] and uf.rejected == "a rock"
    assert uf.raw["score_chosen"] == 8.0  # extra columns are kept for writing back
    hh = parse_pair(HH, "f, row 3")
    assert [m["role"] for m in hh.prompt] == ["user", "assistant", "user"]
    assert hh.prompt[-1]["content"] == "what is a cat?" and (hh.chosen, hh.rejected) == ("a small animal", "no idea")


@pytest.mark.parametrize("row, field", [
    ({"prompt": "q", "rejected": "b"}, "field 'chosen': missing"),
    ({"prompt": "q", "chosen": "  ", "rejected": "b"}, "field 'chosen': empty response"),
    ({"prompt": "q", "chosen": "a", "rejected": 3}, "field 'rejected': expected a string or message list, got int"),
    ({"chosen": "a", "rejected": "b"}, "field 'prompt': missing"),
    ({"prompt": "q", "chosen": "a", "rejected": "b", "mu": "high"}, "field 'mu': expected a number"),
    ({"prompt": "q", "chosen": [{"role": "user", "content": "q"}], "rejected": "b"},
     "field 'chosen': the last message must be the assistant's response"),
    ({**UF, "rejected": [{"role": "user", "content": "other"}, {"role": "assistant", "content": "x"}]},
     "field 'rejected': its conversation before the response differs"),
])
def test_bad_row_error_names_file_row_and_field(tmp_path, row, field):
    good = {"prompt": "q", "chosen": "a", "rejected": "b"}
    path = _jsonl(tmp_path / "prefs.jsonl", [good, good, row])
    with pytest.raises(DataError) as err:
        load_preferences(path)
    assert f"prefs.jsonl, row 3, {field}" in str(err.value)


def test_parquet_json_and_datasets_folder_read_like_jsonl(tmp_path):
    from datasets import Dataset

    rows = [{**UF, "chosen": UF["rejected"], "rejected": UF["chosen"], "mu": 0.5}, {**UF, "mu": -1.0}]
    write_preferences(rows, tmp_path / "p.parquet")
    (tmp_path / "p.json").write_text(json.dumps(rows))
    Dataset.from_list(rows).save_to_disk(str(tmp_path / "ds"))
    for source in (tmp_path / "p.parquet", tmp_path / "p.json", tmp_path / "ds"):
        pairs = load_preferences(str(source))
        assert [p.mu for p in pairs] == [0.5, -1.0] and pairs[1].chosen == "an animal", source


def test_unknown_source_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="not a file, a folder, builtin:NAME, or a dataset"):
        load_preferences("no-such-org/no-such-dataset-xyz")
    (tmp_path / "p.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="unsupported preference file type '.csv'"):
        load_preferences(str(tmp_path / "p.csv"))


def test_truncation_is_counted_and_skip_and_error_modes(tmp_path):
    tok = build_tokenizer()
    long = " ".join(["the cat"] * 20)
    pairs = load_preferences(_jsonl(tmp_path / "p.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b"},
                                                           {"prompt": "q", "chosen": long, "rejected": "b"}]))
    enc = encode_pairs(pairs, tok, max_length=30, too_long="truncate")
    assert enc.truncated == 1 and len(enc) == 2 and len(enc.chosen[1]) == 30
    enc = encode_pairs(pairs, tok, max_length=30, too_long="skip")
    assert enc.skipped == 1 and len(enc) == 1
    with pytest.raises(DataError, match=r"p.jsonl, row 2, field 'chosen'/'rejected': \d+ tokens exceed"):
        encode_pairs(pairs, tok, max_length=30, too_long="error")


def test_pad_right_masks_real_tokens():
    ids, mask = pad_right([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]


def test_synthetic_task_labels_follow_the_true_score_and_flip_the_stated_share():
    # topic +1, two distinct positives +1, 'not wrong' +0.3, final period +0.3, 9 words → −0.15
    assert true_score("moon", "the moon is clear and kind not wrong .".split()) == pytest.approx(2.45)
    # other topic −0.6, negative −0.7, 'not clear' −0.5, 10 words → −0.3 for length
    assert true_score("moon", "star wrong not clear a a a a a a".split()) == pytest.approx(-2.1)
    clean, noisy = make_pairs(400, seed=3), make_pairs(400, seed=3, noise=0.25)
    assert sum(r["flipped"] for r in noisy) == 100
    for c, n in zip(clean, noisy):
        topic = c["prompt"].replace("?", "").split()[-1]
        assert true_score(topic, c["chosen"].split()) > true_score(topic, c["rejected"].split())
        assert (n["chosen"] == c["chosen"]) != n["flipped"]


def test_on_empty_skip_counts_and_logs_the_rows_and_error_names_the_option(tmp_path, caplog):
    rows = [{"prompt": "q", "chosen": "a", "rejected": "b"}, {"prompt": "q", "chosen": "", "rejected": "b"},
            {"prompt": "q", "chosen": "c", "rejected": "d"}, {"prompt": " ", "chosen": "c", "rejected": "d"},
            {"prompt": [], "chosen": "c", "rejected": "d"}]
    path = _jsonl(tmp_path / "p.jsonl", rows)
    with pytest.raises(DataError, match=r"p.jsonl, row 2, field 'chosen': empty response .*data.on_empty=skip"):
        load_preferences(path)
    with caplog.at_level("WARNING", logger="blendrl"):
        pairs = load_preferences(path, on_empty="skip")
    assert [p.chosen for p in pairs] == ["a", "c"]  # nothing else is lost
    assert "skipped 3 of 5 rows" in caplog.text and "rows 2, 4, 5" in caplog.text
    with pytest.raises(DataError, match="row 3, field 'rejected': expected a string"):  # other errors still raise
        load_preferences(_jsonl(tmp_path / "q.jsonl", [rows[1], rows[0], {**rows[0], "rejected": 3}]), "skip")


def test_rm_train_reads_on_empty_from_the_config(tmp_path):
    from blendrl.config import load_config
    from blendrl.config.rm_schema import RMRunConfig
    from blendrl.training.rm.run import load_pairs

    path = _jsonl(tmp_path / "p.jsonl", [{"prompt": "q", "chosen": "the cat", "rejected": "a dog"},
                                         {"prompt": "q", "chosen": "the cat", "rejected": ""}])
    tok = build_tokenizer()
    with pytest.raises(DataError, match="row 2, field 'rejected': empty response"):
        load_pairs(path, tok, load_config(RMRunConfig, None, []))
    assert len(load_pairs(path, tok, load_config(RMRunConfig, None, ["data.on_empty=skip"]))) == 1
