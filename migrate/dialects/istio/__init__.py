"""Istio: reader (source). A writer comes with the "every direction" work."""
