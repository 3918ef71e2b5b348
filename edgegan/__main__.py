"""``python -m edgegan``: the same CLI as the ``edgegan`` command, so that torchrun can start it in
every process: ``torchrun --nproc_per_node N -m edgegan -- train-teacher ...``.

The ``--`` keeps torchrun's own parser off edgegan's options (it would take ``--d`` for an
abbreviation of its ``--duplicate-...`` options); whether that parser passes the ``--`` on depends on
the Python version, so a leading ``--`` is dropped here.
"""

import sys

from edgegan.app.cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(main(args[1:] if args[:1] == ["--"] else args))
