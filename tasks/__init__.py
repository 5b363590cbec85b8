"""labelgate: tasks layer (see DESIGN.md)."""
