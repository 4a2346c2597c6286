"""``python -m clientlink.cli``: the same as the ``clientlink`` console script."""

import sys

from clientlink.cli.main import main

sys.exit(main())
