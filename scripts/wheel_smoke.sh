#!/usr/bin/env bash
# Packaging that stands alone: build blendrl's wheel, install it (with the pinned versions of its declared
# dependencies and nothing else) into a fresh virtual environment, and run commands from it outside the source
# tree: import the public API and every judge, train one PPO iteration on a tiny model with the built-in prompts.
# Usage: bash scripts/wheel_smoke.sh [WORKDIR]   (tests/test_wheel.py runs it)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
work="${1:-$(mktemp -d)}"
mkdir -p "$work"
PY="${PYTHON:-$(command -v python3.11 || command -v python3)}"
.venv/bin/python -m pip wheel -q --no-deps --no-build-isolation -w "$work/dist" "$ROOT"
"$PY" -m venv "$work/venv"
# the wheel's declared dependencies, at the versions requirements.txt pins (torch: the CPU wheel)
"$work/venv/bin/python" -m pip install -q --disable-pip-version-check -c "$ROOT/requirements.txt" \
  "${BLENDRL_TORCH:-torch==2.13.0}" "$work"/dist/blendrl-*.whl 2>&1 | grep -v "is ignored: it is neither" || true
cd "$work"  # away from the source tree: only the installed package can be imported
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
"$work/venv/bin/python" - <<'PY'
import blendrl, pathlib
assert "site-packages" in blendrl.__file__, blendrl.__file__
print("judges:", blendrl.JUDGES.names())
print("reward sources:", blendrl.REWARD_SOURCES.names())
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
words = "yes no a the volcano is what why how in at most words answer explain".split()
vocab = {t: i for i, t in enumerate(["<pad>", "<unk>", "<|im_start|>", "<|im_end|>", *words])}
tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<pad>", unk_token="<unk>")
cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                  num_attention_heads=4, num_key_value_heads=2, eos_token_id=3, pad_token_id=0, bos_token_id=None)
LlamaForCausalLM(cfg).save_pretrained("tiny")
tokenizer.save_pretrained("tiny")
PY
"$work/venv/bin/blendrl" ppo --set model.name=tiny --set data.chat_template=false --set train.iterations=1 \
  --set train.prompts_per_iteration=2 --set generation.max_new_tokens=4 --set logging.eval_prompts=2 \
  --set logging.progress=false --set logging.tensorboard=false --set logging.output_dir=run
test -f run/final/config.json
echo "wheel smoke: ok ($(ls "$work"/dist))"
