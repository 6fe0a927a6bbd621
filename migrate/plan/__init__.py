"""The planner: namespace order, staged steps, and the coexistence rules of each pair."""
