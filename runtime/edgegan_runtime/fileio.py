"""The one rule for reading and writing files, shared by the runtime and (through it) the whole of edgegan.

Reading a file a stranger may have made (a model, a manifest, a dataset file): ``read_regular``.
Regular files only, opened without blocking (a FIFO or a device must not hang the caller before the
type check: issue 14), read with a size cap (``/dev/zero`` or a 100 GB file must not exhaust memory).

Writing: atomic, a temporary file in the same folder, fsync, then rename, so a reader never sees half
a file. Mode: what ``open()`` would give a new file (0666 minus the umask), not ``mkstemp``'s 0600,
since outputs (images, manifests, model files) are meant to be shared.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import tempfile
from pathlib import Path

from edgegan_runtime.errors import FileReadError


def read_regular(path: str | os.PathLike, limit: int, what: str, *, error: type[Exception] = FileReadError) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` bytes; ``what`` names it in messages
    ("model file", "manifest", "dataset file").

    Opened with O_NONBLOCK, then checked with fstat on the open descriptor (no race with a rename):
    a FIFO, socket, device or directory is refused without ever blocking. Raises ``error`` (default
    ``FileReadError``, a ``ModelFileError``) with a one-line message naming the file: missing, not
    a regular file, larger than ``limit``, or unreadable."""
    name = os.fspath(path)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(name, flags)
    except FileNotFoundError:
        raise error(f"{name}: no such {what}") from None
    except OSError as e:
        if e.errno == errno.ENXIO:  # a FIFO without a writer, or a socket, refuses O_NONBLOCK opens
            raise error(f"{name}: {what} is not a regular file") from None
        raise error(f"{name}: cannot read the {what} ({e.strerror or e})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
            raise error(f"{name}: {what} is {kind}, not a regular file")
        if st.st_size > limit:
            raise error(f"{name}: {what} of {st.st_size} bytes is larger than the limit of {limit} bytes")
        with io.open(fd, "rb", closefd=False) as f:
            data = f.read(st.st_size + 1)  # one byte more: a file that grew since fstat shows it
            if len(data) > st.st_size:
                data += f.read(limit + 1 - len(data))
    except OSError as e:
        raise error(f"{name}: cannot read the {what} ({e.strerror or e})") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise error(f"{name}: {what} is larger than the limit of {limit} bytes (it grew while being read)")
    return data


_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


def _read_umask() -> int:
    """The process umask. Linux reports it in /proc (race-free); elsewhere set-and-restore at import."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_read_umask()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically with ``FILE_MODE``; creates missing parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)  # mkstemp makes 0600
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path
