"""meshmigrate: plan the move of a Kubernetes service mesh to another mesh.

The pipeline (see docs/architecture.md)::

    source (files) -> reader[mesh A] -> MeshGraph (IR) -> capability check
        -> writer[mesh B] -> planner -> emitters (RUNBOOK.md, plan.json, steps/)

Every stage appends structured :class:`~migrate.losses.Loss` records to one
:class:`~migrate.losses.LossLog`. The import name is ``migrate``; the distribution and
the command are ``meshmigrate``.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
