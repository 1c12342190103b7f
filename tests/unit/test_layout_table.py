"""README's layout table names every module of the package, and no module that is gone."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def modules_in_table() -> set[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    named: set[str] = set()
    for row in section.splitlines():
        if not row.startswith("| `ogpu"):
            continue
        cell = row.split("|")[1]
        paths = re.findall(r"`([^`]+\.py)`", cell)
        folder = paths[0].rsplit("/", 1)[0]
        # "`ogpu/x/a.py`, `b.py`, `_y/c.py`": later names are relative to the first one's folder,
        # unless they start from the package root.
        for path in paths:
            named.add(path if path.startswith("ogpu/") else f"{folder}/{path}")
    return named


def modules_in_tree() -> set[str]:
    return {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "ogpu").rglob("*.py")
        if path.name != "__init__.py" or path.parent.name in {"events", "types", "chain"}
    } - {"ogpu/types/__init__.py", "ogpu/chain/__init__.py"}


def test_the_layout_table_matches_the_tree() -> None:
    table, tree = modules_in_table(), modules_in_tree()
    assert sorted(tree - table) == [], "modules the README's layout table does not name"
    assert sorted(table - tree) == [], "modules the README's layout table names that do not exist"
