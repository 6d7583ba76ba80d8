#!/usr/bin/env bash
# Opt-in check of the wiring tests (issue "Tests that fail when the wiring is wrong"): applies each listed mutation to
# a throw-away worktree of HEAD, runs the test written to catch it, and prints "caught" or "SURVIVED". Your working
# tree is never touched. About six minutes (the vLLM ones start an engine each).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="$PWD/.venv/bin/python"
tmp="$(mktemp -d)"
git worktree add -q --detach "$tmp/tree" HEAD
trap 'git worktree remove --force "$tmp/tree"; rm -rf "$tmp"' EXIT
cd "$tmp/tree"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
survived=0
try() {  # FILE OLD NEW TEST-ARGS: replace OLD by NEW in FILE, run the test, restore the file
  "$PY" - "$1" "$2" "$3" <<'PY'
import sys
path, old, new = sys.argv[1:4]
text = open(path).read()
assert old in text, f"{path}: {old!r} not found (the code moved: update scripts/wiring_mutations.sh)"
open(path, "w").write(text.replace(old, new, 1))
PY
  if "$PY" -m pytest -q -x -p no:cacheprovider $4 >/dev/null 2>&1; then echo "SURVIVED | $1 | ${2%%$'\n'*}"; survived=1
  else echo "caught   | $1 | ${2%%$'\n'*}"; fi
  git checkout -q -- "$1"
}
try blendrl/training/cgpo/trainer.py "(task.cfg.weight / units)" "(1.0 / units)" "tests/test_cgpo.py -k rho_weighted"
try blendrl/training/cgpo/trainer.py "                    total += loss.item()" "                    total += loss.item()
                    self.engine.optimizer.zero_grad()" "tests/test_cgpo.py -k rho_weighted"
try blendrl/training/shaping.py "        scores = apply_missing_eos_penalty(scores, finished, s.missing_eos_penalty)" "        pass" "tests/test_training.py -k shape_scores"
try blendrl/training/shaping.py "        scores = scores.clamp(-s.clip, s.clip)" "        pass" "tests/test_training.py -k shape_scores"
try blendrl/training/shaping.py "normed = moments.normalize(scores[valid], None, s.normalize, update=update)" "normed = scores[valid]" "tests/test_training.py -k shape_scores"
try blendrl/training/extras.py "        exp.response_mask[~kept.to(exp.response_mask.device)] = 0.0" "        pass" "tests/test_filters.py -k leave_the_update"
try blendrl/algorithms/ppo.py "            rewards = rewards + exp.token_scores * mask" "            pass" "tests/test_segments.py -k dense_segment"
try blendrl/training/rm/run.py "            p.div_(t)" "            pass" "tests/test_rm_robustness.py -k calibration_folds"
try blendrl/training/rm/recipes.py "        flipped = flip_confident(mu, sigma, cfg.flip_z)" "        flipped = flip_lowest(mu, cfg.flip_fraction)" "tests/test_rm_robustness.py -k confident_rule"
try blendrl/algorithms/ppo.py "            rewards = batch_wide(lambda r, m: whiten(r, m, shift_mean=False) * m, rewards, mask)" "            pass" "tests/test_algorithms.py -k kl_in_the"
try blendrl/algorithms/ppo.py "rewards = token_rewards(exp.scores, kl, mask, kl_coef)" "rewards = token_rewards(exp.scores, kl, mask, 0.0)" "tests/test_algorithms.py -k kl_in_the"
try blendrl/functional/kl.py "        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)" "        error = -min(max(current_kl / self.target - 1.0, -0.2), 0.2)" "tests/test_training.py -k adaptive_kl_coefficient"
try blendrl/training/cgpo/tasks.py "            reward = calibrated_reward(raw, self.baseline_scores(prompts))" "            reward = raw" "tests/test_cgpo.py -k own_baseline"
try blendrl/training/cgpo/tasks.py "            reward = calibrated_reward(raw, self.baseline_scores(prompts))" "            reward = calibrated_reward(raw, self.baseline_scores(prompts[::-1]))" "tests/test_cgpo.py -k own_baseline"
try blendrl/algorithms/critic_free.py "        if self.cfg.whiten_advantages:" "        if False:" "tests/test_algorithms.py -k whiten_advantages"
try blendrl/training/rm/trainer.py "            loss = loss + c.beta * cl" "            loss = loss + cl" "tests/test_reward_model.py -k simcse"
try blendrl/lab/overopt.py "                flipped = rng.random() < flip" "                flipped = rng.random() < 0.5" "tests/test_lab_overopt.py -k label_noise"
try blendrl/lab/overopt.py "                if flipped:
                    chosen, rejected = rejected, chosen" "                if False:
                    chosen, rejected = rejected, chosen" "tests/test_lab_overopt.py -k label_noise"
try blendrl/functional/kl.py "    return 0.5 * ((logp - log_m) + torch.exp(ref_logp - logp) * (ref_logp - log_m))" "    return 0.5 * (torch.clamp(logp - log_m, min=0.0) + torch.clamp(ref_logp - log_m, min=0.0))" "tests/test_functional.py -k js"
try blendrl/training/cgpo/tasks.py "            if text is None or not finished:" "            if text is None:" "tests/test_cgpo.py -k truncated_baseline"
try blendrl/training/cgpo/tasks.py "build_reward(cfg.rewards, placement)" "build_reward(cfg.rewards)" "tests/test_placement.py -k cgpo_task"
try blendrl/rewards/base.py "            out.total = out.total + w * part.total" "            out.total = out.total + part.total" "tests/test_rewards.py -k weighted_sum"
try blendrl/training/reference.py "            ref_p.lerp_(p.detach(), self.eta)" "            ref_p.lerp_(p.detach(), 1 - self.eta)" "tests/test_training.py -k ema_reference_moves"
try blendrl/training/dpo.py "1.0 / (1.0 + math.exp(-p.mu)) if s.strength == \"weight\" else 1.0" "1.0" "tests/test_dpo.py -k strength_weights_each"
try blendrl/algorithms/cgpo.py "        lam = F.dual_ascent(lam, violation, threshold, self.cfg.lambda_lr)
        self.multipliers = dict(zip(judges, lam.tolist()))" "        self.multipliers = dict(zip(judges, F.dual_ascent(lam, violation, threshold, self.cfg.lambda_lr).tolist()))" "tests/test_lagrangian.py -k dual_step"
try blendrl/rewards/factory.py "    agg_options = {\"lam\": options.pop(\"lam\")} if \"lam\" in options else {}" "    agg_options = {} if options.pop(\"lam\", None) or True else {}" "tests/test_shared_backbone.py -k uwo"
try blendrl/algorithms/base.py "aggregate(self.token_kl(logp, mb.ref_logp), mb.response_mask" "aggregate(self.token_kl(logp, mb.ref_logp).detach(), mb.response_mask" "tests/test_algorithms.py -k loss_side_kl"
try blendrl/training/trainer.py "weight = units(sub.response_mask) / mb_units" "weight = sub.response_mask.sum() / mb_units" "tests/test_micro_batches.py -k every_loss_aggregation"
try blendrl/functional/losses.py "_sequence_mean((x * m).sum(1) / m.sum(1).clamp_min(1), m)" "masked_mean(x, m)" "tests/test_functional.py -k aggregation"
try blendrl/rollout/vllm_side/blendrl_vllm.py "    if repack:" "    if False:" "tests/test_vllm.py -k each_sync"
try blendrl/rollout/vllm_side/blendrl_vllm.py "        if \"reset_prefix_cache\" not in skip:" "        if False:" "tests/test_vllm.py -k each_sync"
try blendrl/rollout/on_vllm.py "        if out[\"version\"] != self.version:" "        if False:" "tests/test_vllm.py -k another_weight_version"
try blendrl/rollout/on_vllm.py "seeds=seeds.tolist()" "seeds=[0] * len(prompts)" "tests/test_vllm.py -k own_seeds"
try blendrl/rollout/on_vllm.py "        for attempt in range(self.max_restarts + 1):" "        for attempt in range(1):" "tests/test_vllm.py -k killed_or_hung"
try blendrl/rollout/on_vllm.py "deltas.get(key, tensor)" "tensor" "tests/test_vllm.py -k lora_syncs"
try blendrl/training/experience.py "    if generator.exact_logprobs and not gap <= generator.tolerance:" "    if False:" "tests/test_vllm.py -k each_sync"
try blendrl/training/experience.py "        exp.engine_logp = sampled" "        pass" "tests/test_vllm.py -k truncated_importance"
try blendrl/functional/losses.py "        per_token = per_token * weights.detach()" "        pass" "tests/test_functional.py -k truncated"
try blendrl/functional/surrogates.py "    bounded = torch.clamp(ratio, 1.0 - clip.low, 1.0 + clip.high)" "    bounded = torch.clamp(ratio, 1.0 - clip.low, 1.0 + clip.low)" "tests/test_functional.py -k ratio_variants"
try blendrl/functional/surrogates.py "        dual = (advantages < 0) & (loss > capped)" "        dual = (advantages > 0) & (loss > capped)" "tests/test_functional.py -k ratio_variants"
try blendrl/functional/surrogates.py "    ratio = torch.exp(logp - old_logp).detach()" "    ratio = torch.exp(logp - old_logp)" "tests/test_functional.py -k ratio_variants"
try blendrl/algorithms/base.py "        return Clip(low, c.clip_eps if c.clip_high is None else c.clip_high, c.dual_clip)" "        return Clip(low, low, c.dual_clip)" "tests/test_algorithms.py -k configured_clip"
try blendrl/models/logprob_head.py "                g = g.mul_(-(g_out[:, None] + g_ent[:, None] * centred))" "                g = g.mul_(-g_out[:, None])" "tests/test_logprobs.py -k entropy"
try blendrl/algorithms/base.py "        return pg + kl + reg - bonus, stats" "        return pg + kl + reg, stats" "tests/test_algorithms.py -k entropy"
try blendrl/training/dynamic.py "    return (finite.sum(1) >= 2) & (hi > lo)" "    return finite.sum(1) >= 2" "tests/test_training.py -k dynamic"
try blendrl/training/dynamic.py "    parts = kept + spare" "    parts = spare + kept" "tests/test_training.py -k dynamic"
try blendrl/functional/rewards.py "    return -penalty * excess.clamp_max(buffer) / buffer" "    return -penalty * excess.clamp_max(buffer)" "tests/test_training.py -k overlong"
try blendrl/training/trainer.py "        all_scores, all_valid = self.shape_scores(all_raw, all_finished, lengths=all_lengths)" "        all_scores, all_valid = self.shape_scores(all_raw, all_finished)" "tests/test_training.py -k overlong_in_the_loop"
try blendrl/algorithms/ppo.py "            self.lam = lam if c.lambda_max is None else min(lam, c.lambda_max)" "            pass" "tests/test_ppo_lagrangian.py -k after_this_batch"
try blendrl/algorithms/ppo.py "            self.lam = lam if c.lambda_max is None else min(lam, c.lambda_max)" "            self.lam = lam" "tests/test_ppo_lagrangian.py -k lambda_max"
try blendrl/algorithms/ppo.py "(x * (m.sum(1) > 0)).sum()" "x.sum()" "tests/test_ppo_lagrangian.py -k left_out"
try blendrl/algorithms/ppo.py "costs = token_rewards(exp.costs.to(kl.dtype), -kl, mask, kl_coef)" "costs = token_rewards(exp.costs.to(kl.dtype), kl, mask, kl_coef)" "tests/test_ppo_lagrangian.py -k keeps_its_weight"
try blendrl/algorithms/ppo.py "gae(costs, exp.cost_values, mask" "gae(costs, exp.values, mask" "tests/test_ppo_lagrangian.py -k cost_critic_is_fit"
try blendrl/functional/advantages.py "    return (reward_adv - lam * cost_adv) / (1.0 + lam)" "    return reward_adv - lam * cost_adv" "tests/test_ppo_lagrangian.py -k combined_advantage"
try blendrl/algorithms/ppo.py "(mb.values, mb.returns) if critic == \"critic\"" "(mb.values, mb.returns) if True" "tests/test_ppo_lagrangian.py -k cost_critic_is_fit"
try blendrl/training/trainer.py "            exp.cost_values = self.critic_values(exp, \"cost_critic\")" "            exp.cost_values = self.critic_values(exp)" "tests/test_ppo_lagrangian.py -k its_own"
try blendrl/training/trainer.py "                for name in self.critics:" "                for name in self.critics[:1]:" "tests/test_ppo_lagrangian.py -k its_own"
try blendrl/training/run.py "build_critic(cfg.critic.cost_path or backbone" "build_critic(backbone" "tests/test_ppo_lagrangian.py -k its_own"
try blendrl/training/trainer.py "            \"algorithm\": self.algorithm.state_dict()," "" "tests/test_ppo_lagrangian.py -k exact_resume"
try blendrl/training/costs.py "    mask[bad] = 0.0" "    pass" "tests/test_ppo_lagrangian.py -k nan"
try blendrl/judges/factory.py "        return Scores(sum(failed.values()), components=failed)" "        return Scores(0 * sum(failed.values()), components=failed)" "tests/test_ppo_lagrangian.py -k counts_the_failed"
try blendrl/training/trainer.py "            extra.update(take_costs(exp, costs.result(), self.counters))" "            exp.costs = costs.result().total" "tests/test_ppo_lagrangian.py -k nan"
exit $survived
