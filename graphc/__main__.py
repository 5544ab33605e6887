"""``python -m graphc``: the same as the ``graphc`` command."""

import sys

from .cli import main

sys.exit(main())
