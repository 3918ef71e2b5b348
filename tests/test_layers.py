"""The house's layer rule, read from the code: runtime < core < export | bench < app.

Every import in every module (top-level and inside functions) is an arrow; an arrow may point to the
module's own layer or to a lower one, never up, and export and bench never import each other. The
runtime (``edgegan_runtime``) imports nothing of edgegan at all; its no-torch test is in tests/runtime.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RANK = {"runtime": 0, "core": 1, "export": 2, "bench": 2, "app": 3}


def layer(module: str) -> str | None:
    """The layer of a dotted module name of this project; None for anything else (stdlib, third party)."""
    parts = module.split(".")
    if parts[0] == "edgegan_runtime":
        return "runtime"
    if parts[0] != "edgegan":
        return None
    if len(parts) > 1 and parts[1] in ("export", "bench", "app"):
        return parts[1]
    if len(parts) > 1 and parts[1] == "__main__":
        return "app"
    return "core"


def modules() -> list[tuple[str, Path]]:
    out = []
    for top, base in (("edgegan", ROOT / "edgegan"), ("edgegan_runtime", ROOT / "runtime" / "edgegan_runtime")):
        for f in sorted(base.rglob("*.py")):
            rel = f.relative_to(base).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out.append((".".join([top, *parts]), f))
    return out


def imports(module: str, path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import statement in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
    return found


def wrong_arrows() -> list[str]:
    bad = []
    for module, path in modules():
        mine = layer(module)
        for line, target in imports(module, path):
            theirs = layer(target)
            if theirs is None or theirs == mine:
                continue
            if RANK[theirs] > RANK[mine] or RANK[theirs] == RANK[mine]:  # up, or sideways (export <-> bench)
                bad.append(f"{path.relative_to(ROOT)}:{line}: {mine} imports {theirs} ({target})")
    return bad


def test_every_import_points_down_the_layers():
    assert wrong_arrows() == []


@pytest.mark.parametrize("module, expected", [
    ("edgegan_runtime.latent", "runtime"), ("edgegan.distill", "core"), ("edgegan.models.dcgan", "core"),
    ("edgegan.export.exporter", "export"), ("edgegan.bench.harness", "bench"), ("edgegan.app.cli", "app"),
    ("edgegan.__main__", "app"), ("numpy", None), ("edgeganx", None),
])
def test_layer_names(module, expected):
    assert layer(module) == expected


def test_the_rule_catches_an_upward_and_a_sideways_arrow(tmp_path, monkeypatch):
    """The walker is not vacuous: a core module importing the app, and bench importing export, are found."""
    fake = tmp_path / "edgegan"
    (fake / "bench").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "core_mod.py").write_text("def f():\n    from edgegan.app.cli import main\n")
    (fake / "bench" / "__init__.py").write_text("from ..export import export_run\n")
    (tmp_path / "runtime" / "edgegan_runtime").mkdir(parents=True)
    (tmp_path / "runtime" / "edgegan_runtime" / "__init__.py").write_text("import edgegan.manifest\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    bad = wrong_arrows()
    assert sorted(b.split(":")[0] for b in bad) == ["edgegan/bench/__init__.py", "edgegan/core_mod.py",
                                                   "runtime/edgegan_runtime/__init__.py"]


def test_no_package_dir_mapping():
    """The file tree and the import names agree: pyproject maps no package onto another folder."""
    assert "package-dir" not in (ROOT / "pyproject.toml").read_text()
