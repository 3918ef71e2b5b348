"""Child processes in tests (issue 18): every process a test starts is killed and reaped when the test
ends, passed or failed, so one failure never leaves a process (and its open pipes) to the next test;
and a test waits for what the child does (a file, a line on stderr), never for a time the machine's
load decides. ``HANG_GUARD`` is only a ceiling for a child that hangs: far above anything seen on a
loaded 2-core machine, it never decides a pass."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

HANG_GUARD = 900.0  # seconds: a hung child fails the test instead of hanging the suite


@contextmanager
def spawned(cmd: list, **kwargs) -> Iterator[subprocess.Popen]:
    """``subprocess.Popen(cmd, **kwargs)``, killed (if still running) and reaped on the way out, its
    pipes closed. ``Popen.__exit__`` alone would wait forever for a child that never ends. Read a pipe
    with ``Lines`` (or not at all): a child that fills a pipe nobody reads blocks."""
    p = subprocess.Popen(cmd, **kwargs)
    p.readers = []  # Lines threads on its pipes: joined before the pipes close under them
    try:
        yield p
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()  # reaped; a dead child cannot block on a full pipe
        for r in p.readers:
            r.close()
        for f in (p.stdin, p.stdout, p.stderr):
            if f is not None:
                f.close()


class Lines:
    """The lines a child writes to a pipe, read by a thread as they come; ``wait_for`` blocks until a
    line holds a text or the child has exited."""

    def __init__(self, p: subprocess.Popen, pipe=None):
        self._p = p
        self._pipe = pipe if pipe is not None else p.stderr
        self._lines: list[str] = []
        self._changed = threading.Condition()
        self._eof = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        getattr(p, "readers", []).append(self)

    def _read(self) -> None:
        for line in iter(self._pipe.readline, ""):
            with self._changed:
                self._lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._eof = True
            self._changed.notify_all()

    def text(self) -> str:
        with self._changed:
            return "".join(self._lines)

    def wait_for(self, needle: str, ceiling: float = HANG_GUARD) -> bool:
        """True once a line contains ``needle``; False if the child closed the pipe (exited) first."""
        deadline = time.monotonic() + ceiling
        with self._changed:
            while not any(needle in line for line in self._lines):
                if self._eof:
                    return False
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no line with {needle!r} within the {ceiling:.0f} s hang guard")
                self._changed.wait(left)
            return True

    def close(self) -> str:
        """Wait for the end of the pipe (the child has exited) and return everything it wrote."""
        self._thread.join(HANG_GUARD)
        return self.text()


def wait_until(ready: Callable[[], bool], p: subprocess.Popen, what: str, ceiling: float = HANG_GUARD) -> bool:
    """Poll ``ready()`` until it holds (True) or the child exits (False); a hang guard, not a speed goal."""
    deadline = time.monotonic() + ceiling
    while not ready():
        if p.poll() is not None:
            return ready()
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within the {ceiling:.0f} s hang guard")
        time.sleep(0.05)
    return True
