"""Experiments that measure methods rather than train a product: ``overopt`` (the gold-vs-proxy lab)."""
