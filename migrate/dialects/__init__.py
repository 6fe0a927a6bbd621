"""Mesh dialects: one package per mesh, each with a reader and/or a writer."""
