"""clientlink tui/widgets."""
