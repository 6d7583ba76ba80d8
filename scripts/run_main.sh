#!/usr/bin/env bash
# The main job: set up, then multi-task CGPO on the embedded SmolLM2-135M-Instruct (examples/cgpo_multitask.yaml),
# then summed-reward PPO with the same budget, then both runs' held-out tables side by side. Extra args go to both
# runs (e.g. --set train.iterations=4).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/blendrl cgpo --config examples/cgpo_multitask.yaml "$@"
# The baseline starts from the same model and is evaluated on the same held-out prompts with the same seed, so its
# "before" would repeat CGPO's to the last digit: it is measured once (the table below takes it from runs/cgpo).
.venv/bin/blendrl cgpo-ppo --config examples/cgpo_multitask.yaml --set logging.eval_before=false "$@"
echo
echo "held-out judge pass rates, reward (SmolLM2 helpfulness log-odds), KL to the reference, length:"
.venv/bin/blendrl eval --runs CGPO=runs/cgpo summed-PPO=runs/cgpo_ppo
