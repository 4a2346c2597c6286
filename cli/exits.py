"""The ``clientlink`` command's exit statuses."""

EXIT_ATTENTION = 1
"""``clientlink status``: something needs a person."""
EXIT_ERROR = 2
EXIT_NO_DAEMON = 3
