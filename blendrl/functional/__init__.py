"""Pure tensor math of blendrl, public like ``torch.nn.functional``.

Every function states its shapes and the equation it implements; registries let configs pick by name.
"""
from .advantages import (SEQUENCE_ADVANTAGES, constrained_advantages, gae, grpo_advantages, reinforce_advantages,
                         rloo_advantages)
from .kl import KL_ESTIMATORS, AdaptiveKLController, FixedKLController, kl_penalty, sequence_kl
from .losses import clip_fraction, policy_loss, value_loss
from .masked import masked_mean, masked_sum, masked_var, whiten
from .rewards import RunningMoments, apply_missing_eos_penalty, last_token_index, overlong_penalty, token_rewards
from .rm_losses import (
    adaptive_margin_loss, bradley_terry_loss, flip_lowest, label_smoothing_loss, metarm_difference_loss,
    preference_strength, simcse_loss, soft_label_margin_loss,
)

__all__ = [
    "adaptive_margin_loss", "bradley_terry_loss", "flip_lowest", "label_smoothing_loss",
    "metarm_difference_loss", "preference_strength", "simcse_loss", "soft_label_margin_loss",
    "SEQUENCE_ADVANTAGES", "KL_ESTIMATORS", "AdaptiveKLController", "FixedKLController", "RunningMoments",
    "apply_missing_eos_penalty", "clip_fraction", "constrained_advantages", "gae", "grpo_advantages", "kl_penalty",
    "last_token_index",
    "masked_mean", "masked_sum", "masked_var", "overlong_penalty", "policy_loss", "reinforce_advantages",
    "rloo_advantages",
    "sequence_kl", "token_rewards", "value_loss", "whiten",
]
