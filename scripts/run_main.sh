#!/usr/bin/env bash
# The main job: set up, then PPO on the embedded SmolLM2-135M-Instruct (examples/ppo_rule.yaml). Extra args pass on.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/blendrl ppo --config examples/ppo_rule.yaml "$@"
