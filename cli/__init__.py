"""The ``clientlink`` command line: subcommands, the demo, the systemd service install."""
