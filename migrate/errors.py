"""Errors a caller can act on, and the process exit codes they map to.

The library never calls ``sys.exit``; :mod:`migrate.cli` maps these to :class:`ExitStatus`
in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ExitStatus(IntEnum):
    """Exit codes of the ``meshmigrate`` command (documented in the README)."""

    OK = 0
    """Plan written; no loss at or above ``--fail-on``."""
    ERROR = 1
    """Bad input (some documents could not be read) or an I/O failure; the rest was planned."""
    USAGE = 2
    """Wrong flags or arguments (click's own code)."""
    LOSSES = 3
    """Plan written, but a loss at or above ``--fail-on`` exists."""
    INVALID = 4
    """Plan written, but ``--validate-with`` found manifests that break their schema."""
    UNREACHABLE = 5
    """The cluster could not be reached or read: no kubeconfig or a broken one, unknown
    context, connection refused, TLS failure, timeout, or 429/5xx answers and expiring
    continue tokens still there after the last retry."""
    UNAUTHORIZED = 6
    """The cluster rejected the credentials (expired or invalid token or certificate)."""
    NO_MESH = 7
    """The cluster serves none of the source mesh's API groups."""


@dataclass(frozen=True)
class InputProblem:
    """One document or file that could not be used, with where it is."""

    source: str
    """File path (or ``<stdin>``) the problem is in."""
    line: int | None
    """1-based line, when known."""
    column: int | None
    """1-based column, when known."""
    message: str
    """What is wrong, in one line."""

    def __str__(self) -> str:
        where = self.source
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.message}"


class MigrateError(Exception):
    """Base of every error meshmigrate raises on purpose."""

    exit_status: ExitStatus = ExitStatus.ERROR


class UsageError(MigrateError):
    """The call itself is wrong (unknown mesh, missing input, bad option value)."""

    exit_status = ExitStatus.USAGE


class SourceError(MigrateError):
    """The input cannot be read at all (no such path, nothing readable)."""


class ClusterUnreachable(MigrateError):
    """The cluster cannot be reached or read, or its configuration cannot be used."""

    exit_status = ExitStatus.UNREACHABLE


class ClusterUnauthorized(MigrateError):
    """The cluster answered 401: the credentials are expired or wrong."""

    exit_status = ExitStatus.UNAUTHORIZED


class MeshNotFound(MigrateError):
    """The cluster serves none of the API groups of the mesh asked for."""

    exit_status = ExitStatus.NO_MESH
