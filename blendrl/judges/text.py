"""What a reader sees in a response: the text rule judges check, so invisible or look-alike characters cannot
carry a forbidden word past them or split a refusal phrase.

``visible_text`` applies NFKC (full-width and compatibility forms → plain), drops invisible format characters
(zero-width spaces and joiners, soft hyphens, bidi controls: Unicode category Cf), and maps the Cyrillic and
Greek letters that look like Latin ones to those Latin letters.
"""
from __future__ import annotations

import unicodedata

# Cyrillic and Greek letters drawn like Latin letters (lower and upper case)
_CONFUSABLES = str.maketrans({
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s", "һ": "h",
    "ԁ": "d", "ԛ": "q", "ԝ": "w", "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P",
    "С": "C", "Т": "T", "Х": "X", "І": "I", "Ј": "J", "Ѕ": "S", "ο": "o", "α": "a", "ε": "e", "ι": "i", "κ": "k",
    "ν": "v", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I",
    "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
})


def visible_text(text: str) -> str:
    """NFKC, without format characters, with Latin look-alikes mapped to Latin (see the module doc)."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    return text.translate(_CONFUSABLES)
