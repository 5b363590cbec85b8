"""labelgate: checks layer (see DESIGN.md)."""
