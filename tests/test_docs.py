"""The documentation (issue 24): the site builds with `mkdocs build --strict` (a broken link, a missing
anchor or a link mkdocs cannot resolve fails it), and README.md stays a front door whose links all lead
somewhere."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MAX_README_LINES = 150

# [text](target) and ![alt](target); the target ends at whitespace or the closing parenthesis.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*([^)\s]+)(?:\s+\"[^\"]*\")?\s*\)")


def readme_links() -> list[str]:
    """The relative link targets in README.md, outside fenced code blocks, without their #anchor."""
    text = re.sub(r"^```.*?^```", "", README.read_text(encoding="utf-8"), flags=re.S | re.M)
    out = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith(("#", "//")):
            continue  # http(s), mailto, an anchor on this page
        out.append(target.split("#", 1)[0])
    return out


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None,
                    reason="mkdocs or mkdocs-material is not installed (pip install -e '.[dev]' installs both)")
def test_site_builds_strict(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's end-of-life banner: a notice, not a warning
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                           "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stderr}"
    assert "WARNING" not in proc.stderr, proc.stderr
    site = tmp_path / "site"
    assert (site / "index.html").is_file()
    # the hook brings bench/results/ along: its pages, their index, and the images the docs show
    assert (site / "bench" / "results" / "index.html").is_file()
    assert (site / "bench" / "results" / "mnist" / "index.html").is_file()
    results = (site / "results" / "index.html").read_text(encoding="utf-8")
    for image in re.findall(r'<img [^>]*src="([^"]+)"', results):
        assert (site / "results" / image).resolve().is_file(), image


def test_readme_is_a_front_door():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; move detail into docs/"


def test_readme_links_lead_to_files():
    targets = readme_links()
    assert targets, "no relative links found in README.md (the parser is broken)"
    missing = [t for t in targets if not (README.parent / t).exists()]
    assert missing == [], f"README.md links to missing files: {missing}"
