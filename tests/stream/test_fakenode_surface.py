"""``ogpu.events.testing.FakeNode`` offers what the README documents, and nothing more to lean on."""

from __future__ import annotations

import re
from pathlib import Path

from ogpu.events.testing import FakeNode

README = Path(__file__).resolve().parents[2] / "README.md"
DOCUMENTED = {
    "chain",
    "chain_id",
    "count",
    "emit",
    "emit_many",
    "fail_next",
    "head",
    "lose_filters",
    "lose_next_answer",
    "mine",
    "nexus",
    "reorg",
    "requests",
    "url",
    "wait_for_watchers",
    "without_filters",
}


def test_its_public_names_are_the_documented_ones() -> None:
    node = FakeNode()

    assert {name for name in dir(node) if not name.startswith("_")} == DOCUMENTED


def test_the_readme_table_names_each_method_it_has() -> None:
    text = README.read_text()
    table = text[text.index("| `FakeNode` | does |") : text.index("### Mocking the HTTP layer yourself")]
    first_cells = [row.split("|")[1] for row in table.splitlines()[2:] if row.startswith("|")]
    named = {name for cell in first_cells for name in re.findall(r"`(?:await )?([a-z_]+)[(`]", cell)}

    assert named <= DOCUMENTED
    assert DOCUMENTED - {"chain", "chain_id", "nexus", "url"} <= named
