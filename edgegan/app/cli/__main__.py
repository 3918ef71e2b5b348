"""``python -m edgegan.app.cli``: the same as the ``edgegan`` command."""

import sys

from edgegan.app.cli import main

sys.exit(main())
