"""The import rules between the layers of ``ogpu.events``, read from the source (ast), and no import circle.

Each layer may import only the layers below it (see ``MAY_IMPORT``); every
module may import ``ogpu``'s base modules (``ogpu._errors``, ``ogpu.chain``,
``ogpu.types``, ...), which import nothing of ``ogpu.events`` but its public
package. An import inside ``if TYPE_CHECKING:`` is never executed, so it
makes no arrow at run time and is exempt from both checks. An import inside
a function is executed when the function runs: it is held to the layer
rules. Circles are looked for twice: among module-level imports (what
importing a module imports), with no exception; and with the imports inside
functions too, except the back edges listed in ``LAZY_BACK_EDGES``.

The checker takes any tree, so the table at the end plants wrong arrows in a
temporary copy and asserts each is reported.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

EVENTS = "ogpu.events"
LAYERS = ("_codec", "_net", "_stream", "_checkpoint", "_watch", "_cli", "_fake", "_devnode")
PUBLIC = ("ogpu.events", "ogpu.events.types", "ogpu.events.watchers")

# What each layer may import besides itself and ogpu's base modules. The
# stream sees only the network and the codec; the watchers put the stream and
# the checkpoints together; the command, the demo and the kit go through the
# watchers' seam (``_watch.control``), never into the stream.
MAY_IMPORT: dict[str, frozenset[str]] = {
    "_codec": frozenset(),
    "_net": frozenset({"_codec"}),
    "_stream": frozenset({"_net", "_codec"}),
    "_checkpoint": frozenset({"_net", "_codec"}),
    "_watch": frozenset({"_stream", "_checkpoint", "_net", "_codec"}),
    "_fake": frozenset({"_codec"}),
    "_devnode": frozenset({"_codec"}),
    # The command (and its demo) may use anything but the stream's insides, the in-memory node and the kit.
    "_cli": frozenset({"_codec", "_net", "_watch", "_checkpoint", "_devnode", "public"}),
    "public": frozenset({"_watch", "_codec", "_checkpoint"}),
    "testing": frozenset({"_fake", "_watch", "_net", "_codec"}),
    # ``ogpu`` itself offers ``ogpu.events`` as an attribute (imported when first used).
    "base": frozenset({"public"}),
}

# Imports inside a function that close a circle, allowed (not required) here.
LAZY_BACK_EDGES: frozenset[tuple[str, str]] = frozenset(
    {
        # By design: the Postgres backend (and psycopg) loads only for a postgresql:// URL.
        ("ogpu.events._checkpoint.store", "ogpu.events._checkpoint.postgres"),
    }
)


@dataclass(frozen=True)
class Arrow:
    """``source`` imports ``target`` (both module names) at ``line``."""

    source: str
    target: str
    line: int
    module_level: bool


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str:
    """``_codec`` ... ``_devnode``, ``public``, ``testing``, or ``base`` (ogpu outside ogpu.events)."""
    if module in PUBLIC:
        return "public"
    if module == f"{EVENTS}.testing":
        return "testing"
    if module.startswith(EVENTS + "."):
        layer = module.split(".")[2]
        if layer in LAYERS:
            return layer
        raise AssertionError(f"{module} is in no layer: add it to LAYERS or PUBLIC")
    return "base"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(body: list[ast.stmt], module_level: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """The import statements under ``body``, except those under ``if TYPE_CHECKING:``."""
    for stmt in body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            yield stmt, module_level
        elif isinstance(stmt, ast.If) and _is_type_checking(stmt.test):
            yield from _imports(stmt.orelse, module_level)  # the else branch runs
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield from _imports(stmt.body, False)
        else:
            for field in ("body", "orelse", "finalbody", "handlers"):
                children = getattr(stmt, field, None)
                if isinstance(children, list):
                    nested = [c.body if isinstance(c, ast.ExceptHandler) else [c] for c in children]
                    yield from _imports([s for group in nested for s in group], module_level)
            if isinstance(stmt, ast.ClassDef):
                continue
            for case in getattr(stmt, "cases", []):  # match statements
                yield from _imports(case.body, module_level)


def import_arrows(root: Path, package: str = "ogpu") -> list[Arrow]:
    """Every import of one ``package`` module by another under ``root`` (run-time imports only)."""
    files = sorted((root / package).rglob("*.py"))
    modules = {module_name(root, f) for f in files}
    arrows: list[Arrow] = []
    for path in files:
        source = module_name(root, path)
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for stmt, module_level in _imports(tree.body, True):
            targets: list[str] = []
            if isinstance(stmt, ast.Import):
                targets = [alias.name for alias in stmt.names]
            else:
                base = stmt.module or ""
                if stmt.level:
                    anchor = source.split(".") if is_package else source.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (stmt.level - 1)]
                    base = ".".join([*anchor, *([base] if base else [])])
                for alias in stmt.names:
                    full = f"{base}.{alias.name}"
                    targets.append(full if full in modules else base)
            for target in dict.fromkeys(targets):  # once per statement, in order
                if target in modules and target != source:
                    arrows.append(Arrow(source, target, stmt.lineno, module_level))
    return arrows


def wrong_arrows(arrows: list[Arrow]) -> list[Arrow]:
    """The arrows that break ``MAY_IMPORT``."""
    wrong = []
    for arrow in arrows:
        source, target = layer_of(arrow.source), layer_of(arrow.target)
        if target not in (source, "base") and target not in MAY_IMPORT[source]:
            wrong.append(arrow)
    return wrong


def circles(arrows: list[Arrow], *, lazy: bool = False) -> list[list[str]]:
    """Each import circle among modules, as the modules around it (one per circle).

    At module level only, unless ``lazy``: then imports inside functions count too.
    """
    graph: dict[str, set[str]] = {}
    for arrow in arrows:
        if arrow.module_level or lazy:
            graph.setdefault(arrow.source, set()).add(arrow.target)
    found: list[list[str]] = []
    seen: set[frozenset[str]] = set()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                circle = path[path.index(nxt) :]
                if frozenset(circle) not in seen:
                    seen.add(frozenset(circle))
                    found.append([*circle, nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def _describe(arrow: Arrow) -> str:
    return (
        f"{arrow.source} ({layer_of(arrow.source)}) imports {arrow.target} "
        f"({layer_of(arrow.target)}) at line {arrow.line}"
    )


# --- the real tree ---


def test_every_module_is_in_a_layer_and_the_checker_sees_the_tree() -> None:
    arrows = import_arrows(ROOT)
    for arrow in arrows:
        layer_of(arrow.source)  # raises for a module in no layer
    # A blind checker would pass everything: it must see the stream import the client.
    assert ("ogpu.events._stream.hub", "ogpu.events._net.rpc") in {(a.source, a.target) for a in arrows}


def test_no_layer_imports_a_layer_above_it() -> None:
    wrong = wrong_arrows(import_arrows(ROOT))
    assert not wrong, "\n".join(_describe(a) for a in wrong)


def test_no_import_circle_among_ogpu_modules() -> None:
    assert circles(import_arrows(ROOT)) == []


def test_no_import_circle_even_through_imports_inside_functions() -> None:
    arrows = [a for a in import_arrows(ROOT) if (a.source, a.target) not in LAZY_BACK_EDGES]
    assert circles(arrows, lazy=True) == []


# --- the checker on planted trees ---

CLEAN = {
    "ogpu/__init__.py": "",
    "ogpu/_errors.py": "",
    "ogpu/events/__init__.py": "from ogpu.events._watch.watchers import watch\n",
    "ogpu/events/testing.py": "from ogpu.events._fake import rpc\n",
    "ogpu/events/_codec/__init__.py": "",
    "ogpu/events/_codec/abi.py": "from ogpu._errors import *\n",
    "ogpu/events/_net/__init__.py": "",
    "ogpu/events/_net/rpc.py": "from ogpu.events._codec import abi\n",
    "ogpu/events/_stream/__init__.py": "",
    "ogpu/events/_stream/hub.py": "from ..._errors import *\nfrom .._net.rpc import *\n",
    "ogpu/events/_checkpoint/__init__.py": "",
    "ogpu/events/_checkpoint/store.py": "from ogpu.events._net import rpc\n",
    "ogpu/events/_watch/__init__.py": "",
    "ogpu/events/_watch/watchers.py": (
        "from ogpu.events._stream import hub\nfrom ogpu.events._checkpoint import store\n"
    ),
    "ogpu/events/_fake/__init__.py": "",
    "ogpu/events/_fake/rpc.py": "import ogpu.events._codec.abi\n",
    "ogpu/events/_devnode/__init__.py": "",
    "ogpu/events/_devnode/nodes.py": "",
    "ogpu/events/_cli/__init__.py": "",
    "ogpu/events/_cli/demo.py": "from ogpu.events._devnode import nodes\nfrom ogpu.events import watch\n",
}


def plant(tmp_path: Path, changes: dict[str, str]) -> Path:
    for name, text in {**CLEAN, **changes}.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp_path


def test_a_clean_planted_tree_passes(tmp_path: Path) -> None:
    arrows = import_arrows(plant(tmp_path, {}))
    assert len(arrows) == 12
    assert wrong_arrows(arrows) == []
    assert circles(arrows) == []


@pytest.mark.parametrize(
    ("module", "text", "wrong"),
    [
        ("_codec/abi.py", "from ogpu.events._stream import hub\n", "ogpu.events._stream.hub"),
        ("_codec/abi.py", "from .._net.rpc import call\n", "ogpu.events._net.rpc"),  # relative
        ("_stream/hub.py", "from ogpu.events._cli import demo\n", "ogpu.events._cli.demo"),
        ("_stream/hub.py", "from ogpu.events import testing\n", "ogpu.events.testing"),
        (
            "_stream/hub.py",
            "def f():\n    import ogpu.events._checkpoint.store\n",
            "ogpu.events._checkpoint.store",
        ),
        (
            "_net/rpc.py",
            "try:\n    from ogpu.events._stream import hub\nexcept ImportError:\n    pass\n",
            "ogpu.events._stream.hub",
        ),
        ("_fake/rpc.py", "from ogpu.events._net import rpc\n", "ogpu.events._net.rpc"),
        ("_devnode/nodes.py", "from ogpu.events._fake import rpc\n", "ogpu.events._fake.rpc"),
        ("_cli/demo.py", "from ogpu.events.testing import FakeNode\n", "ogpu.events.testing"),
        ("__init__.py", "from ogpu.events._cli import demo\n", "ogpu.events._cli.demo"),
        ("testing.py", "from ogpu.events._devnode import nodes\n", "ogpu.events._devnode.nodes"),
        ("_checkpoint/store.py", "from ogpu.events._fake import rpc\n", "ogpu.events._fake.rpc"),
        ("_checkpoint/store.py", "from ogpu.events._watch import watchers\n", "ogpu.events._watch.watchers"),
        ("_cli/demo.py", "from ogpu.events._stream import hub\n", "ogpu.events._stream.hub"),  # past the seam
    ],
)
def test_a_planted_wrong_arrow_is_reported(tmp_path: Path, module: str, text: str, wrong: str) -> None:
    arrows = import_arrows(plant(tmp_path, {f"ogpu/events/{module}": text}))
    assert [a.target for a in wrong_arrows(arrows)] == [wrong]


def test_an_import_for_type_checking_only_makes_no_arrow(tmp_path: Path) -> None:
    text = (
        "from typing import TYPE_CHECKING\n"
        "import typing\n"
        "if TYPE_CHECKING:\n    from ogpu.events._stream import watch\n"
        "if typing.TYPE_CHECKING:\n    from ogpu.events._cli import demo\n"
    )
    arrows = import_arrows(plant(tmp_path, {"ogpu/events/_codec/abi.py": text}))
    assert [a for a in arrows if a.source == "ogpu.events._codec.abi"] == []


def test_a_planted_circle_is_reported_and_one_through_a_function_only_when_asked(tmp_path: Path) -> None:
    changes = {
        "ogpu/_errors.py": "from ogpu.chain import mask_url\n",
        "ogpu/chain/__init__.py": "from ogpu.chain.config import mask_url\n",
        "ogpu/chain/config.py": "from ogpu._errors import ChainError\n",
    }
    assert circles(import_arrows(plant(tmp_path, changes))) == [
        ["ogpu._errors", "ogpu.chain", "ogpu.chain.config", "ogpu._errors"]
    ]
    lazy = {**changes, "ogpu/_errors.py": "def masked():\n    from ogpu.chain import mask_url\n"}
    arrows = import_arrows(plant(tmp_path, lazy))
    assert circles(arrows) == []
    assert circles(arrows, lazy=True) == [["ogpu._errors", "ogpu.chain", "ogpu.chain.config", "ogpu._errors"]]
