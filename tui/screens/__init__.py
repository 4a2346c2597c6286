"""clientlink tui/screens."""
