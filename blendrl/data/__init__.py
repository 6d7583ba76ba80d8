"""Prompt and preference datasets: formats, validation, built-in tasks."""
from .builtin import BUILTIN_PROMPTS
from .prompts import DataError, PromptExample, PromptSampler, load_prompt_set, load_prompts, read_prompt_rows

__all__ = ["BUILTIN_PROMPTS", "DataError", "PromptExample", "PromptSampler", "load_prompt_set", "load_prompts",
           "read_prompt_rows"]
