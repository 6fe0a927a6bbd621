"""Behavioural equivalence: evaluate requests against the source manifests and against the
emitted target manifests, each with its own mesh's semantics, and compare the outcomes.

The evaluators read manifests, never the IR, so a mapping bug cannot hide in both. Every mesh
(Istio, Linkerd, Consul) has an evaluator and a probe generator (``registry.py``), so any mesh
can be on either side of ``compare.compare``; ``coexist.coexistence`` checks the mixed states a
plan passes through, step by step.
"""
