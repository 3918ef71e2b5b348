"""The `edgegan-runtime` wheel carries the C port of the sampler and pixel rule (issue 18, item 6).

Built without build isolation (the dev extra pins setuptools >= 77, what runtime/pyproject.toml
needs), from a copy of runtime/ so that no build/ or egg-info lands in the repository."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

RUNTIME = Path(__file__).resolve().parents[2] / "runtime"


@pytest.mark.slow  # one setuptools build (a few seconds)
def test_wheel_holds_the_c_port_and_the_build_warns_of_nothing_ignored(tmp_path):
    src = tmp_path / "runtime"
    shutil.copytree(RUNTIME, src, ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation", str(src),
                        "-w", str(tmp_path / "dist")], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    log = r.stdout + r.stderr
    # setuptools' warning for a data folder it does not know as a package; the files would still ship
    # today, but "would be ignored" is the deprecation that drops them in a later setuptools.
    assert "would be ignored" not in log, log[log.find("would be ignored") - 500:][:1500]
    (wheel,) = (tmp_path / "dist").glob("edgegan_runtime-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"edgegan_runtime/c/edgegan.c", "edgegan_runtime/c/edgegan.h"} <= names, sorted(names)
    assert "edgegan_runtime/__init__.py" in names and not any(n.startswith("tests/") for n in names)
    for n in ("edgegan.c", "edgegan.h"):  # the shipped bytes are the source's
        assert zipfile.ZipFile(wheel).read(f"edgegan_runtime/c/{n}") == (RUNTIME / "edgegan_runtime" / "c" / n).read_bytes()
