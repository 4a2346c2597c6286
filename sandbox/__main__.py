"""`python -m clientlink.sandbox`: serve the sandbox (or `approve URL`)."""

import sys

from clientlink.sandbox.cli import main

sys.exit(main())
