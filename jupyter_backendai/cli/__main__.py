"""``python -m jupyter_backendai.cli``."""

import sys

from . import main

sys.exit(main())
