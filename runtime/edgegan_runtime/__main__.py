"""``python -m edgegan_runtime`` is the ``edgegan-runtime`` command."""

import sys

from edgegan_runtime.cli import main

sys.exit(main())
