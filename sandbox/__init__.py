"""clientlink sandbox."""
