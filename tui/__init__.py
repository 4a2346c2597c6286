"""clientlink tui."""
