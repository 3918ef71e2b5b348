"""MkDocs hook (mkdocs.yml `hooks:`): the recorded benchmark results join the site.

`bench/results/` lies outside `docs/`, so a page linking `bench/results/face64.md` or showing
`bench/results/face64-grid.png` would be a broken link to `mkdocs build --strict`. `on_files` adds every
markdown and PNG file there as a site file read from the repository root (same relative path, so the
links resolve), and one generated page, `bench/results/index.md`, that lists the markdown files.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File, Files

RESULTS = Path("bench") / "results"
SUFFIXES = (".md", ".png")
INDEX = (RESULTS / "index.md").as_posix()


def _root(config) -> Path:
    return Path(config.config_file_path).resolve().parent


def on_files(files: Files, config) -> Files:
    root = _root(config)
    pages = []
    for path in sorted((root / RESULTS).iterdir()):
        if not path.is_file() or path.suffix not in SUFFIXES:
            continue
        rel = path.relative_to(root).as_posix()
        if files.get_file_from_path(rel) is None:
            files.append(File(rel, src_dir=str(root), dest_dir=config.site_dir,
                              use_directory_urls=config.use_directory_urls))
        if path.suffix == ".md":
            pages.append(path)
    if pages and files.get_file_from_path(INDEX) is None:
        lines = ["# Recorded results", "",
                 "Every file `bench/scripts/` wrote under `bench/results/`; each records its machine and library versions.",
                 ""]
        for path in pages:
            title = next((ln.lstrip("# ").strip() for ln in path.read_text(encoding="utf-8").splitlines()
                          if ln.startswith("# ")), path.stem)
            lines.append(f"- [{path.name}]({path.name}): {title}")
        files.append(File.generated(config, INDEX, content="\n".join(lines) + "\n"))
    return files


def on_serve(server, config, builder):
    """`mkdocs serve` rebuilds when a result changes, not only when docs/ does."""
    server.watch(str(_root(config) / RESULTS))
    return server
