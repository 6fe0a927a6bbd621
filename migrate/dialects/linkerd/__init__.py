"""Linkerd 2.14-2.20 (edge-26.x) as a migration target."""
