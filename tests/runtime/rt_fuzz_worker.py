"""Fuzz worker: loads model files named on stdin, one per line, and reports each on stdout.

Each report line starts with ``@@ `` (stray native output is skipped): ``OK``, ``TYPED <ErrorClass>``
(a RuntimeModelError: the wanted outcome for a broken file) or ``UNTYPED <ExceptionClass> <message>``
(any other exception: a bug); a typed error's message follows a tab. A crash or a hang shows as a missing line; the parent counts it and
starts a new worker. Runs without torch.
"""

from __future__ import annotations

import sys


def main() -> None:
    sys.modules["torch"] = None  # type: ignore[assignment]  # the runtime must not need it
    import edgegan_runtime as rt

    for line in sys.stdin:
        path = line.rstrip("\n")
        try:
            g = rt.load(path)
            g.generate(2, seed=1)
            g.close()
            out = "OK"
        except rt.RuntimeModelError as e:
            out = f"TYPED {type(e).__name__}\t{' '.join(str(e).split())[:300]}"
        except Exception as e:  # noqa: BLE001 - reported, and the test fails on it
            out = f"UNTYPED {type(e).__name__} {' '.join(str(e).split())[:200]}"
        sys.stdout.write("@@ " + out + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
