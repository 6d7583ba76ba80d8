"""Bad input gives a one-line error naming the file, row, field or config key."""
import json

import pytest

from blendrl.cli.main import main as cli
from blendrl.config import ConfigError, PPORunConfig, load_config
from blendrl.data import DataError, load_prompts
from blendrl.models import ModelNotFoundError, resolve_model
from tests.tiny import build_tokenizer


def test_unknown_config_key_suggests_the_right_one(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  itertions: 3\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'train.itertions' \(did you mean 'iterations'\?\)"):
        load_config(PPORunConfig, f)


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.lr=fast", r"train.lr: expected a number, got 'fast'"),
        ("train.iterations=0", r"train.iterations: must be >= 1"),
        ("generation.top_p=1.5", r"generation.top_p: must be in \(0, 1\]"),
        ("train.minibatches=3", r"train.minibatches: 16 samples do not split into 3"),
        ("critic.init=reward_model", r"critic.path: required when init is reward_model"),
    ],
)
def test_wrong_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(PPORunConfig, None, [override])


@pytest.mark.parametrize(
    "override, message",
    [
        ("kl.kind=k7", r"kl.kind: unknown KL estimator 'k7'; choose one of \['clamped', 'js', 'js_lora_ppo', 'k1', "
                       r"'k2', 'k3'\]"),
        ("algorithm.name=ppo2", r"algorithm.name: unknown algorithm 'ppo2'"),
        ("rewards=[{kind: rm}]", r"rewards\[0\].kind: unknown reward source kind 'rm'"),
        ("reference.kind=frozn", r"reference.kind: unknown reference strategy 'frozn'"),
        ("regularizer.kind=chi3", r"regularizer.kind: unknown regularizer 'chi3'; choose one of \['chi2', 'none'\]"),
    ],
)
def test_unknown_names_are_found_before_models_load(override, message):
    from blendrl.training.names import check_names

    cfg = load_config(PPORunConfig, None, [override])  # the shape is fine; the name is the registries' business
    with pytest.raises(ConfigError, match=message):
        check_names(cfg)


def test_no_reward_source_is_an_error_before_models_load():
    from blendrl.training.run import build_trainer

    with pytest.raises(ConfigError, match=r"rewards: at least one reward source"):
        build_trainer(load_config(PPORunConfig, None, ["rewards=[]", "model.name=/nonexistent/model"]))


def test_scientific_notation_without_a_dot_is_a_number(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  lr: 1e-5\n")  # PyYAML alone reads this as the string '1e-5'
    assert load_config(PPORunConfig, f, ["critic.lr=3e-4"]).train.lr == 1e-5


def test_missing_config_file():
    with pytest.raises(ConfigError, match="config file nope.yaml does not exist"):
        load_config(PPORunConfig, "nope.yaml")


def test_set_addresses_list_items_by_name_or_index():
    from blendrl.config.cgpo_schema import CGPORunConfig
    cfg = load_config(CGPORunConfig, "examples/cgpo_multitask.yaml",
                      ["tasks.chat.judges=[{kind: eos}, {kind: format, options: {min_words: 20}}]",
                       "tasks.2.optimizer.name=codpo", "tasks.-2.samples_per_prompt=3"])
    chat, instructions, math = cfg.tasks
    assert [j.kind for j in chat.judges] == ["eos", "format"] and chat.judges[1].options == {"min_words": 20}
    assert math.optimizer.name == "codpo" and instructions.samples_per_prompt == 3
    with pytest.raises(ConfigError, match=r"no item named 'code' in the list \(names: chat, instructions, math\)"):
        load_config(CGPORunConfig, "examples/cgpo_multitask.yaml", ["tasks.code.optimizer.name=crpg"])
    with pytest.raises(ConfigError, match=r"index 3 is out of range \(the list has 3 items\)"):
        load_config(CGPORunConfig, "examples/cgpo_multitask.yaml", ["tasks.3.weight=2"])


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


def test_empty_prompt_file(tmp_path, tok):
    f = tmp_path / "p.jsonl"
    f.write_text("\n")
    with pytest.raises(DataError, match="no prompts found"):
        load_prompts(str(f), tok, 64)


@pytest.mark.parametrize(
    "rows, message",
    [
        (['{"prompt": "hello"}', "{not json"], r"p.jsonl, row 2: not valid JSON"),
        (['{"prompt": "hello"}', '{"text": "x"}'], r"p.jsonl, row 2: missing field 'prompt'"),
        (['{"prompt": ""}'], r"p.jsonl, row 1, field 'prompt': empty prompt"),
        (['{"prompt": 3}'], r"row 1, field 'prompt': expected a non-empty string or message list"),
        (['{"messages": [{"role": "user"}]}'], r"row 1, field 'messages\[0\]'"),
        (['{"prompt": "hi", "metadata": [1]}'], r"row 1, field 'metadata': expected an object"),
    ],
)
def test_malformed_rows_name_file_row_and_field(tmp_path, tok, rows, message):
    f = tmp_path / "p.jsonl"
    f.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=message):
        load_prompts(str(f), tok, 64)


@pytest.mark.parametrize("name", ["p.jsonl", "p.txt", "p.json"])
def test_a_prompt_file_that_is_not_utf8_names_file_and_row(tmp_path, tok, name):
    f = tmp_path / name
    body = '{"prompt": "caf\xe9"}' if name != "p.txt" else "caf\xe9"
    first = '{"prompt": "hello"}\n' if name != "p.json" else ""
    f.write_bytes((first + body + "\n").encode("latin-1"))  # é as the single byte 0xe9
    row = 1 if name == "p.json" else 2
    with pytest.raises(DataError, match=rf"{name}, row {row}: not UTF-8 text \(byte 0xe9 at offset \d+\)"):
        load_prompts(str(f), tok, 64)


def test_prompt_longer_than_context_errors_or_is_counted(tmp_path, tok):
    f = tmp_path / "p.jsonl"
    f.write_text(json.dumps({"prompt": "hello " * 100}) + "\n" + json.dumps({"prompt": "hi", "metadata": {"a": 1}}))
    with pytest.raises(DataError, match=r"row 1, field 'prompt': \d+ tokens exceed data.max_prompt_tokens=32"):
        load_prompts(str(f), tok, 32)
    examples, skipped = load_prompts(str(f), tok, 32, too_long="skip")
    assert skipped == 1 and len(examples) == 1 and examples[0].metadata == {"a": 1}


def test_chat_message_prompts_and_txt_files(tmp_path, tok):
    f = tmp_path / "p.json"
    f.write_text(json.dumps([{"prompt": [{"role": "system", "content": "be brief"},
                                         {"role": "user", "content": "what is the sun ?"}], "key_term": "sun"}]))
    (ex,), _ = load_prompts(str(f), tok, 64)
    assert ex.text.endswith("<|im_start|>assistant ") and ex.metadata == {"key_term": "sun"}
    t = tmp_path / "p.txt"
    t.write_text("hello\n\nworld\n")
    examples, _ = load_prompts(str(t), tok, 64)
    assert [e.row for e in examples] == [1, 3]


def test_model_path_that_does_not_exist():
    with pytest.raises(ModelNotFoundError, match="model path ./no/such/model does not exist"):
        resolve_model("./no/such/model")
    with pytest.raises(ModelNotFoundError, match="model file missing.gguf does not exist"):
        resolve_model("missing.gguf")


def test_cli_prints_one_line_error_and_exits_2(tmp_path, capsys):
    code = cli(["ppo", "--set", "model.name=./nowhere", "--set", f"logging.output_dir={tmp_path}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == "blendrl: error: model path ./nowhere does not exist"


def test_on_empty_skip_leaves_empty_prompts_out_and_counts_them(tmp_path, tok, caplog):
    from blendrl.config.schema import DataConfig
    from blendrl.data import load_prompt_set

    f = tmp_path / "p.jsonl"
    f.write_text('{"prompt": "hello"}\n{"prompt": "  "}\n{"messages": []}\n{"prompt": "bye"}\n')
    with pytest.raises(DataError, match=r"row 2, field 'prompt': empty prompt .*on_empty=skip"):
        load_prompt_set(str(f), tok, DataConfig(), None)
    with caplog.at_level("WARNING", logger="blendrl"):
        got = load_prompt_set(str(f), tok, DataConfig(on_empty="skip"), None)
    assert [(p.user_text, p.row) for p in got] == [("hello", 1), ("bye", 4)]
    assert "skipped 2 of 4 rows" in caplog.text and "rows 2, 3" in caplog.text


def test_each_named_kind_checks_its_own_options_and_needs_with_the_key_path():
    """A registered kind owns its checks (``Registry.register(name, check=, options=)``), run once by check_names
    before any model loads, the error naming the key; a user's kind gets the same."""
    from blendrl.config import ConfigError, PPORunConfig, from_dict
    from blendrl.core.registries import REWARD_SOURCES
    from blendrl.rewards import CallableReward
    from blendrl.training.names import check_names

    def check(**sections):
        check_names(from_dict(PPORunConfig, sections))

    with pytest.raises(ConfigError, match=r"^rewards\[0\]\.options\.batchsize: reward source kind 'hf_rm' has no such "
                                          r"option; it takes \[.*'batch_size'"):
        check(rewards=[{"kind": "hf_rm", "path": "rm", "options": {"batchsize": 4}}])
    with pytest.raises(ConfigError, match=r"^rewards\[0\]\.name: required for a rule reward source"):
        check(rewards=[{"kind": "rule"}])
    with pytest.raises(ConfigError, match=r"^reference\.paths: a soup reference needs at least 2 models"):
        check(reference={"kind": "soup", "paths": ["a"]})
    with pytest.raises(ConfigError, match=r"^reference\.kind: ema needs full fine-tuning"):
        check(reference={"kind": "ema"}, model={"lora": {"r": 4}})
    with pytest.raises(ConfigError, match=r"^generation\.options\.kv_cache: generation backend 'vllm' has no such "
                                          r"option; it takes \[.*'kv_cache_gb'"):
        check(generation={"backend": "vllm", "options": {"kv_cache": 2}})
    with pytest.raises(ConfigError, match=r"^generation\.options\.dtype: expected one of"):
        check(generation={"backend": "vllm", "options": {"dtype": "fp8"}})

    def wants_scale(cfg, root=None):
        if cfg.options.get("scale", 1.0) <= 0:
            raise ValueError("options.scale: must be > 0")

    @REWARD_SOURCES.register("test_scaled", check=wants_scale)
    def _scaled(cfg):
        return CallableReward(lambda p, r, m: cfg.options.get("scale", 1.0), cfg.name or "scaled")

    with pytest.raises(ConfigError, match=r"^rewards\[1\]\.options\.scale: must be > 0"):
        check(rewards=[{"kind": "rule", "name": "concise_mention"}, {"kind": "test_scaled", "options": {"scale": 0}}])
    check(rewards=[{"kind": "test_scaled", "options": {"scale": 2.0}}])


def test_prompts_from_parquet_and_a_datasets_folder_train_and_a_bad_row_is_named(tiny_dir, tmp_path):
    """verl's parquet and a ``save_to_disk`` folder load like a .jsonl (TRL's conversational ``prompt`` column too)
    and train one iteration each; a bad row is named by file, row and field before any model loads."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Dataset

    from blendrl.data.prompts import DataError, read_prompt_rows
    from blendrl.training.run import run
    from tests.tiny import tiny_config

    rows = [{"prompt": [{"role": "user", "content": f"what is a {w} ?"}], "metadata": {"w": w}}
            for w in ("volcano", "planet", "ocean", "river")]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "p.parquet")
    Dataset.from_list(rows).save_to_disk(str(tmp_path / "ds"))
    for source in (str(tmp_path / "p.parquet"), str(tmp_path / "ds")):
        got = read_prompt_rows(source)
        assert [m[-1]["content"] for m, *_ in got] == [r["prompt"][0]["content"] for r in rows]
        assert got[0][1]["w"] == "volcano" and got[2][3] == 3  # metadata kept, 1-based rows
        res = run(tiny_config(tiny_dir, tmp_path / ("run-" + source.rsplit("/", 1)[-1]), **{
            "train.iterations": 1, "data.prompts": source, "data.eval_prompts": "null"}))
        assert res["trainer"].iteration == 1
    pq.write_table(pa.Table.from_pylist([{"prompt": "fine"}, {"prompt": None}]), tmp_path / "bad.parquet")
    with pytest.raises(DataError, match=r"bad\.parquet, row 2.*prompt"):
        read_prompt_rows(str(tmp_path / "bad.parquet"))


def test_a_bad_prompt_row_fails_before_any_model_loads(tiny_dir, tmp_path, monkeypatch):
    """The prompts (train and eval) are read and checked before the policy, reference or critic is built."""
    import blendrl.training.run as run_module
    from blendrl.data.prompts import DataError
    from tests.tiny import tiny_config

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded before the prompts were checked")

    monkeypatch.setattr(run_module, "load_causal_lm", no_model)
    monkeypatch.setattr(run_module, "load_critic", no_model)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "fine"}\n{"promt": "typo"}\n')
    for key in ("data.prompts", "data.eval_prompts"):
        with pytest.raises(DataError, match=r"bad\.jsonl, row 2"):
            run_module.build_trainer(tiny_config(tiny_dir, tmp_path / key, **{key: str(bad)}))


VERL_ROWS = [{"data_source": "gsm8k", "question": f"what is {a} + {b} ?", "ability": "math",
              "reward_model": {"style": "rule", "ground_truth": str(a + b)}, "extra_info": {"index": i}}
             for i, (a, b) in enumerate([(2, 3), (4, 4), (1, 6), (7, 2)])]
VERL_COLUMNS = "{prompt: question, metadata: {answer: reward_model.ground_truth, source: data_source}}"


def answer_said(prompt: str, response: str, metadata: dict) -> float:
    """1 when the response contains ``metadata['answer']`` (the mapped column), else 0."""
    return float(metadata["answer"] in response)


def test_data_columns_maps_a_verl_style_row_and_a_missing_column_is_named(tiny_dir, tmp_path):
    """``data.columns`` takes the prompt and metadata fields from the columns a verl parquet uses (a nested one by
    dots); the mapped rows train a PPO iteration whose reward reads the mapped answer, and a CGPO task's own columns
    override ``data.columns``; a row without a mapped column is named by file, row and column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from blendrl.config import ConfigError
    from blendrl.config.settings import ColumnsConfig
    from blendrl.data.prompts import DataError, read_prompt_rows
    from blendrl.training.run import run
    from tests.tiny import tiny_cgpo_config, tiny_config

    pq.write_table(pa.Table.from_pylist(VERL_ROWS), tmp_path / "verl.parquet")
    src = str(tmp_path / "verl.parquet")
    got = read_prompt_rows(src, columns=ColumnsConfig("question", {"answer": "reward_model.ground_truth",
                                                                   "source": "data_source"}))
    assert [m for m, *_ in got][1] == [{"role": "user", "content": "what is 4 + 4 ?"}]
    meta = got[1][1]
    assert meta["answer"] == "8" and meta["source"] == "gsm8k" and meta["extra_info"] == {"index": 1}
    assert "question" not in meta  # the prompt column moved to the prompt
    res = run(tiny_config(tiny_dir, tmp_path / "ppo", **{
        "data.prompts": src, "data.eval_prompts": src, "data.columns": VERL_COLUMNS, "train.iterations": 1,
        "rewards": "[{kind: callable, name: 'tests.test_bad_input:answer_said'}]", "logging.eval_prompts": 4}))
    assert res["trainer"].train_prompts[3].metadata["answer"] == "9" and "eval/reward/mean" in res["after"].metrics
    cgpo = tiny_cgpo_config(tiny_dir, tmp_path / "cgpo")
    cgpo.tasks[0].prompts, cgpo.tasks[0].eval_prompts = src, None
    cgpo.tasks[0].columns = ColumnsConfig("question", {"answer": "reward_model.ground_truth"})
    from blendrl.training.cgpo.run import build_cgpo_trainer

    task = build_cgpo_trainer(cgpo).tasks[0]
    assert task.prompts[0].metadata["answer"] == "5" and task.prompts[0].user_text == "what is 2 + 3 ?"
    rows = [*VERL_ROWS[:2], {k: v for k, v in VERL_ROWS[2].items() if k != "reward_model"}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "bad.parquet")
    with pytest.raises(DataError, match=r"bad\.parquet, row 3, field 'reward_model\.ground_truth': missing "
                                        r"\(data\.columns\.metadata\.answer names it\)"):
        read_prompt_rows(str(tmp_path / "bad.parquet"), columns=ColumnsConfig("question", {"answer":
                                                                                         "reward_model.ground_truth"}))
    with pytest.raises(ConfigError, match=r"data\.columns\.metadata\.answer: expected a column name"):
        tiny_config(tiny_dir, tmp_path, **{"data.columns": "{metadata: {answer: 3}}"})
