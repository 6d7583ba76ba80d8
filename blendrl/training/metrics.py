"""The metrics of one RL iteration over the whole batch (every rank's rows), the same names for every algorithm."""
from __future__ import annotations

from ..core import dist
from ..functional import masked_sum


def rollout_metrics(exp, scored, raw, valid, finished, seq_kl, timer, kl_coef: float, skipped_samples: int,
                    skipped_updates: int) -> dict:
    """The iteration's metrics over the whole batch: ``raw``, ``valid``, ``finished``, ``seq_kl`` are every rank's
    rows (:func:`blendrl.core.dist.gather_rows`); ``exp`` and ``scored`` (the reward's Scores) are this rank's;
    ``timer``: the step's clock readings; the KL coefficient and the run's skip counters as they stand."""
    mask = exp.response_mask
    lengths = dist.gather_rows(mask.sum(1).cpu())[0]
    scores = dist.gather_rows(exp.scores.cpu())[0]
    components = {k: dist.gather_rows(v)[0] for k, v in {**scored.components, **scored.stats}.items()}
    token_kl = dist.all_sum(masked_sum(exp.behaviour_logp - exp.ref_logp, mask)) \
        / dist.all_sum(mask.sum()).clamp_min(1)
    gen_s = timer["rollout"] - timer["start"]
    return {
        "reward/mean": raw[valid].mean().item(),
        "reward/std": raw[valid].std().item() if valid.sum() > 1 else 0.0,
        "reward/shaped_mean": scores[valid].mean().item(),
        **{f"reward/{k}": v[valid].mean().item() for k, v in components.items()},
        "kl/seq_k1": seq_kl[valid].mean().item(),
        "kl/token_k1": token_kl.item(),
        "kl/coef": kl_coef,
        "response/length": lengths[valid].mean().item(),
        "response/eos_rate": finished.float().mean().item(),
        "skipped/samples_total": skipped_samples,
        "skipped/updates_total": skipped_updates,
        "time/rollout_s": gen_s,
        "time/ref_critic_s": timer["ref_critic"] - timer["rollout"],
        "time/score_s": timer["score"] - timer["ref_critic"],  # scoring beyond what overlapped the passes above
        "time/update_s": timer["update"] - timer["score"],
        "time/iteration_s": timer["update"] - timer["start"],
        "throughput/gen_tokens_per_s": dist.world() * exp.response_mask.numel() / max(gen_s, 1e-9),
        **episode_metrics(exp.transcripts),
    }


def episode_metrics(transcripts: list | None, every_rank: bool = True) -> dict:
    """``env/<stat>``: the mean per episode of what the environment counted (turns, tool calls, malformed calls,
    tool errors, the sandbox's blocked families, ...) over every rank's episodes (``every_rank``: a collective; a
    held-out evaluation runs on one rank and passes False); none for single responses."""
    if transcripts is None:
        return {}
    stats = [t.stats for t in (dist.gather_objects(list(transcripts)) if every_rank else transcripts)]
    always = {"turns", "truncated", "tool_calls", "malformed_calls", "tool_errors"}  # 0 where none happened
    keys = sorted(always | {k for s in stats for k in s})
    return {f"env/{k}": sum(s.get(k, 0.0) for s in stats) / max(len(stats), 1) for k in keys}

