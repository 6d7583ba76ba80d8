"""Text measures that rewards and judges share."""
from __future__ import annotations

import re

_WORD = re.compile(r"[A-Za-z0-9']+")


def count_words(text: str) -> int:
    """Runs of letters, digits and apostrophes."""
    return len(_WORD.findall(text))
