"""``python -m migrate`` runs the command line."""

from __future__ import annotations

from migrate.cli import run

if __name__ == "__main__":  # pragma: no cover - exercised through the console script
    run()
