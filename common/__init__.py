"""clientlink common."""
