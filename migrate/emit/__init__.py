"""Emitters: pure renderers of a Plan (manifest folders, plan.json, RUNBOOK.md, the report)."""
