"""labelgate: flows layer (see DESIGN.md)."""
