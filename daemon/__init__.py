"""clientlink daemon."""
