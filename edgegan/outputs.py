"""Run directories: checked before any work, and nothing half-written left behind when a run fails.

A run directory (``train-teacher``, ``distill``) holds, while it trains, a resumable checkpoint
(``state.json``, its commit point, and the ``state-*.safetensors`` it names) and, once finished, the
final weights and ``manifest.json`` (written last). When a run fails for any reason (a bad input, a
full disk, Ctrl-C, a diverged loss) ``run_output`` leaves one of two things (issue 14):

* a resumable checkpoint (``state.json`` that verifies) and whatever sample grids were written, and
  the error says ``--resume`` continues it; final weights without a manifest are removed;
* nothing at all: the files the run wrote and the folders it created are removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Iterator

from edgegan.errors import EdgeganError, OutputError

# The final weights a run writes just before its manifest; without a manifest they are not a result.
FINAL_WEIGHTS = ("generator.safetensors", "discriminator.safetensors")


def check_out(out: Path) -> None:
    """``--out`` must be a directory, or a path whose nearest existing ancestor is a writable directory."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: --out is a file, not a directory")
    p = out
    while not p.exists() and not p.is_symlink():
        if p.parent == p:
            break
        p = p.parent
    if p.is_symlink() and not p.exists():
        raise OutputError(f"{out}: {p} is a dangling symbolic link")
    if not p.is_dir():
        raise OutputError(f"{out}: cannot be created, {p} is a file, not a directory")
    if not os.access(p, os.W_OK | os.X_OK):
        raise OutputError(f"{out}: {p} is not writable")


def missing_dirs(path: Path) -> list[Path]:
    """The folders on the way to ``path`` that do not exist yet, deepest first (to undo on failure)."""
    out = []
    p = path
    while not p.exists() and not p.is_symlink():
        out.append(p)
        if p.parent == p:
            break
        p = p.parent
    return out


def remove_empty(dirs: list[Path]) -> None:
    for d in dirs:
        try:
            d.rmdir()
        except OSError:
            break


@contextlib.contextmanager
def run_output(out: Path) -> Iterator[None]:
    """Create ``out`` (after ``check_out``) for a run; on failure leave a resumable checkpoint or nothing."""
    check_out(out)
    created = missing_dirs(out)
    started_empty = not out.exists() or not any(out.iterdir())
    try:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(f"{out}: cannot create the folder ({e.strerror or type(e).__name__})") from None
        yield
    except BaseException as e:
        step = _clean_after_failure(out, started_empty)
        remove_empty(created)
        if step is not None and isinstance(e, EdgeganError):
            try:
                hinted = type(e)(f"{e} (the checkpoint at step {step} is kept: continue with --resume)")
            except TypeError:  # an error class with its own constructor: keep it as it is
                raise e from None
            raise hinted from None
        raise


def _clean_after_failure(out: Path, started_empty: bool) -> int | None:
    """Remove what a failed run must not leave; returns the step of the resumable checkpoint kept, if any."""
    if not out.is_dir() or (out / "manifest.json").is_file():
        return None  # a finished run (or nothing written): not ours to touch
    for name in FINAL_WEIGHTS:
        _unlink(out / name)
    step = _resumable_step(out)
    if step is None and started_empty:
        # Nothing resumable and the folder was ours alone: the samples, a torn checkpoint, temporaries.
        for p in out.iterdir():
            if p.name == "samples" and p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            elif p.name.startswith(("state", ".")) and (p.is_file() or p.is_symlink()):
                _unlink(p)
    return step


def _resumable_step(out: Path) -> int | None:
    if not (out / "state.json").exists():
        return None
    try:
        from edgegan.checkpoint import read_training_state

        return int(read_training_state(out)["step"])
    except (EdgeganError, OSError, ValueError, TypeError):
        return None


def _unlink(p: Path) -> None:
    try:
        p.unlink()
    except FileNotFoundError:
        pass
    except OSError:
        pass
