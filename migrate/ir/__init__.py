"""The mesh-neutral intermediate representation: typed records in a graph of typed edges."""
