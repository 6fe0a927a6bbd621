"""Gateway API semantics shared by every target that speaks it (Linkerd today)."""
