"""Writing inside a run, and only there (issue 25).

* ``manifest_lock``: the read-modify-write of a run's ``manifest.json`` (an export recording its entry,
  bench its section) happens under an exclusive ``fcntl`` lock on ``.manifest.lock`` beside it, so
  concurrent ``edgegan export`` of one run record every file (before: 3 of 30 entries were lost).
* ``SafeDir``: a folder opened once with ``O_NOFOLLOW``; temporaries are created, renamed and removed
  through its file descriptor, so a symbolic link swapped in for the folder after its check cannot
  redirect a write outside the run.
* ``inside``: a relative path read from a manifest that must stay inside its run (weights).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from pathlib import Path
from typing import Iterator

from edgegan.errors import ConfigError, OutputError

LOCK_NAME = ".manifest.lock"


@contextlib.contextmanager
def manifest_lock(run_dir: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on ``run_dir``'s manifest while the block reads and rewrites it."""
    import fcntl

    path = Path(run_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as e:
        raise OutputError(f"{path}: cannot lock the manifest ({e.strerror or type(e).__name__})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


class SafeDir:
    """An existing folder opened with ``O_DIRECTORY | O_NOFOLLOW``; names are relative to its descriptor.

    Raises ``error`` (ConfigError by default: the folder is the user's) when the path is a symbolic link
    or not a folder."""

    def __init__(self, path: str | os.PathLike, error: type[Exception] = ConfigError):
        self.path = Path(path)
        try:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise error(f"{self.path}: is a symbolic link or not a folder; files are written to a real folder "
                            "inside the run") from None
            raise OutputError(f"{self.path}: cannot open the folder ({e.strerror or type(e).__name__})") from None

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "SafeDir":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def write_temp(self, prefix: str, suffix: str, data: bytes, mode: int) -> str:
        """A new file ``prefix<random>suffix`` holding ``data`` (fsynced, ``mode``); returns its name."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        for _ in range(100):
            name = f"{prefix}{secrets.token_hex(4)}{suffix}"
            try:
                fd = os.open(name, flags, 0o600, dir_fd=self.fd)
                break
            except FileExistsError:
                continue
        else:
            raise OutputError(f"{self.path}: cannot create a temporary file")
        try:
            os.fchmod(fd, mode)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            self.unlink(name)
            raise
        return name

    def replace(self, src: str, dst: str) -> None:
        os.replace(src, dst, src_dir_fd=self.fd, dst_dir_fd=self.fd)

    def unlink(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=self.fd)

    def names(self) -> list[str]:
        return os.listdir(self.fd)


def inside(base: str | os.PathLike, rel: str, what: str, error: type[Exception]) -> Path:
    """``base / rel`` where ``rel`` (read from a file) is relative, has no ``..`` and does not resolve
    outside ``base`` through a symbolic link; otherwise ``error`` naming ``what``."""
    if not isinstance(rel, str) or not rel:
        raise error(f"{base}: {what} should be a relative path (a string), got {type(rel).__name__}")
    p = Path(rel)
    if p.is_absolute() or ".." in p.parts or "\0" in rel:
        raise error(f"{base}: {what} {rel!r} must be a relative path inside the run")
    base_r = Path(base).resolve()
    full = base_r / p
    if not full.resolve().is_relative_to(base_r):
        raise error(f"{base}: {what} {rel!r} resolves outside the run (a symbolic link)")
    return full
