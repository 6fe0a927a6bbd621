"""The mesh-neutral intermediate representation: typed records held in a networkx graph."""
