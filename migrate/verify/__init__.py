"""Behavioural equivalence: evaluate requests against the source manifests and against the
emitted target manifests, each with its own mesh's semantics, and compare the outcomes.

The evaluators read manifests, never the IR, so a mapping bug cannot hide in both.
"""
