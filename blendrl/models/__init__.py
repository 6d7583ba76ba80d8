"""Model loading (hub id, folder, GGUF, embedded default), value/reward heads, LoRA."""
from .heads import last_token_scores, load_critic, token_values
from .loading import (
    EMBEDDED_DEFAULT, ModelNotFoundError, cache_root, convert_gguf, load_causal_lm, load_tokenizer, resolve_model,
)
from .lora import add_lora, is_peft

__all__ = [
    "EMBEDDED_DEFAULT", "ModelNotFoundError", "add_lora", "cache_root", "convert_gguf", "is_peft",
    "last_token_scores", "load_causal_lm", "load_critic", "load_tokenizer", "resolve_model", "token_values",
]
