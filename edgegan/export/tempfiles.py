"""The exporter's temporary files: written beside their final name (so the rename is atomic) under a
hidden name that carries the writer's process id, renamed once recorded, and removed when an export
that wrote them was killed. Every step goes through a descriptor of the folder (``SafeDir``, issue 25)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from edgegan.errors import EdgeganError, OutputError
from edgegan.manifest import FILE_MODE
from edgegan.safedir import SafeDir


def commit(tmp: Path, final: Path) -> None:
    try:  # renamed through the folder's descriptor, opened again with O_NOFOLLOW (issue 25)
        with SafeDir(final.parent) as d:
            d.replace(tmp.name, final.name)
    except OSError as e:
        unlink(tmp)
        raise OutputError(f"{final}: cannot write ({e.strerror or type(e).__name__})") from None


def _temp_prefix(final: Path) -> str:
    return f".{final.stem}."


_TEMP = re.compile(r"\.(?P<stem>.+)\.(?P<pid>\d+)\.\w+\.tmp\.\w+")


def remove_stale(final: Path) -> None:
    """Temporaries left in ``final``'s folder by exports that were killed (SIGKILL during the parity
    check), of any file (issue 25): their name carries the writer's process id; those whose process
    is gone are removed."""
    with SafeDir(final.parent) as d:
        for name in d.names():
            m = _TEMP.fullmatch(name)
            if m is None or int(m["pid"]) == os.getpid() or _alive(int(m["pid"])):
                continue
            d.unlink(name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, owned by someone else
    return True


def write(final: Path, data: bytes) -> Path:
    # Same folder (so the rename is atomic), hidden name with our process id (so a later export can
    # tell an orphan from a file being written), and the real extension: the runtime picks the type from it.
    # Created through a descriptor of the folder opened with O_NOFOLLOW: a symbolic link swapped in for
    # exports/ after its check cannot send the file outside the run (issue 25).
    try:
        with SafeDir(final.parent) as d:
            name = d.write_temp(f"{_temp_prefix(final)}{os.getpid()}.", f".tmp{final.suffix}", data, FILE_MODE)
    except OSError as e:
        raise OutputError(f"{final}: cannot write ({e.strerror or type(e).__name__})") from None
    return final.parent / name


def unlink(p: Path) -> None:
    try:  # through the folder's descriptor where it is still a real folder (issue 25)
        with SafeDir(p.parent) as d:
            d.unlink(p.name)
    except (EdgeganError, OSError):
        pass
