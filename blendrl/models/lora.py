"""LoRA through peft. Under LoRA the reference policy is the same weights with adapters disabled (no copy)."""
from __future__ import annotations

from ..config import LoraConfig


def add_lora(model, cfg: LoraConfig, task_type: str = "CAUSAL_LM"):
    """Wrap ``model`` with fresh LoRA adapters (``peft.get_peft_model``); only adapters are trainable."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    peft_cfg = PeftLoraConfig(
        r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
        target_modules=cfg.target_modules if isinstance(cfg.target_modules, str) else list(cfg.target_modules),
        task_type=task_type,
    )
    return get_peft_model(model, peft_cfg)


def is_peft(model) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")
