"""Sources: where manifests come from. Each yields :class:`RawObject` records plus problems.

Readers never see where an object came from beyond its ``origin`` (file and line), so a
cluster source can later feed the same readers as the file source.
"""

from __future__ import annotations

from migrate.sources.model import RawObject, SourceResult

__all__ = ["RawObject", "SourceResult"]
