"""One process of a torchrun job for tests/test_distributed.py: runs edgegan commands and records
every file this process opened for writing, renamed, created or removed (Python audit hooks see
each of them, whichever library made the call from Python).

usage: torchrun ... tests/ddp_worker.py -- REPORT_DIR CMD ARGS... [--then CMD ARGS...]

The commands run one after the other in the same process group, as ``edgegan CMD ARGS`` (the same
``edgegan.app.cli.main`` that ``python -m edgegan`` runs), so one torchrun start serves several commands.
REPORT_DIR/rank<RANK>.json gets {"exit_codes": [...], "written": [absolute paths]}.
"""

from __future__ import annotations

import json
import os
import sys

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
written: list[str] = []


def _path(p: object) -> str | None:
    if isinstance(p, (str, bytes, os.PathLike)):
        p = os.fsdecode(p)
        return os.path.abspath(p)
    return None  # a file descriptor


def audit(event: str, args: tuple) -> None:
    if event == "open":
        path, mode, flags = args
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (isinstance(flags, int) and flags & WRITE_FLAGS)
        paths = [path] if writes else []
    elif event in ("os.rename", "os.replace", "shutil.copyfile", "shutil.move"):
        paths = [args[1]]
    elif event in ("os.mkdir", "os.remove", "os.rmdir", "os.truncate", "os.symlink", "os.link", "os.chmod"):
        paths = [args[0]]
    else:
        return
    for p in paths:
        if (q := _path(p)) is not None:
            written.append(q)


def main() -> int:
    args = sys.argv[1:]
    if args[:1] == ["--"]:  # torchrun passes on the "--" that ends its own options, or not (Python version)
        args = args[1:]
    report_dir, argv = args[0], args[1:]
    commands: list[list[str]] = [[]]
    for a in argv:
        if a == "--then":
            commands.append([])
        else:
            commands[-1].append(a)
    sys.addaudithook(audit)
    from edgegan.app.cli import main as edgegan

    codes = []
    for cmd in commands:
        codes.append(edgegan(cmd))
        if codes[-1]:
            break
    rank = os.environ.get("RANK", "0")
    with open(os.path.join(report_dir, f"rank{rank}.json"), "w") as f:
        json.dump({"exit_codes": codes, "written": written}, f)
    return max(codes)


if __name__ == "__main__":
    sys.exit(main())
