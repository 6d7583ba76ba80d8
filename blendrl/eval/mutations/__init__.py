"""Mutation operators for a generated red team: the rewrites a policy's search finds against a judge.

A :class:`Mutation` rewrites a response for one prompt (:class:`Context`: the judge kind, its options, the prompt
and its metadata). A ``hack`` mutation makes the response violate the judge's contract *by construction* while a
lax checker would still pass it (the gold hidden in a hedge, a forbidden word spelled with a look-alike, a comma
look-alike, padding with numbers); a ``benign`` one keeps a response's verdict (whitespace, markdown emphasis,
casing where case does not matter). So a hack mutation applied to any response, with any benign or hack mutations
after it, must be a violation, and a benign mutation of an honest response must still pass: the properties
``tests/test_redteam_properties.py`` checks with Hypothesis and ``blendrl redteam`` searches for counterexamples
of. Look-alikes come from the whole UTS #39 table (:func:`~blendrl.judges.text.lookalikes`).

``MUTATIONS`` is a registry: ``@MUTATIONS.register("name")`` on a :class:`Mutation` adds a user's own operator.
"""
from . import answers, wording  # noqa: F401  (each registers its operators)
from .core import MUTATIONS, Context, Mutation, applicable, mutation

__all__ = ["MUTATIONS", "Context", "Mutation", "applicable", "mutation"]
