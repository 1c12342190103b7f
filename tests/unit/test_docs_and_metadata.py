"""The library as a newcomer meets it: imports, help texts, URLs in logs, metadata, first run."""

from __future__ import annotations

import dataclasses
import inspect
import re
import subprocess
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

import ogpu.events
from ogpu.chain import mask_url
from ogpu.events._codec import models as _models

ROOT = Path(__file__).resolve().parents[2]

# --- 7: masking every URL shown ---


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://mainnet.infura.io/v3/MYAPIKEY123", "https://mainnet.infura.io/v3/***"),
        ("https://eth.example/v2/abcdefghijklmnopqr", "https://eth.example/v2/***"),  # 16+ letters
        ("https://eth.example/1234567890123456/rpc", "https://eth.example/***/rpc"),  # 16+ digits
        ("https://u:p@eth.example/rpc?apikey=k", "https://***@eth.example/rpc?***"),
        ("https://eth.example/ext/bc/C/rpc", "https://eth.example/ext/bc/C/rpc"),  # words stay
        ("https://mainnet-rpc.ogpuscan.io", "https://mainnet-rpc.ogpuscan.io"),
        ("http://127.0.0.1:8545/", "http://127.0.0.1:8545/"),
        ("https://eth.example/mainnet/archive", "https://eth.example/mainnet/archive"),  # letters only, short
    ],
)
def test_urls_are_shown_without_anything_that_looks_like_a_key(url: str, shown: str) -> None:
    assert mask_url(url) == shown


# --- 9a: import ogpu, then use everything ---


@pytest.mark.nodes
def test_import_ogpu_reaches_the_subpackages_and_stays_light() -> None:
    code = (
        "import sys, ogpu\n"
        "heavy = [m for m in ('httpx', 'ogpu.events', 'eth_abi') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert callable(ogpu.events.watch_attempted)\n"
        "assert ogpu.types.TaskStatus.FINALIZED == 5\n"
        "assert ogpu.chain.ChainConfig is ogpu.ChainConfig\n"
        "assert 'httpx' not in sys.modules  # the stream machinery loads with the first watcher\n"
        "assert {'events', 'types', 'chain'} <= set(dir(ogpu))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


def test_an_unknown_attribute_of_ogpu_is_still_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="nonsense"):
        _ = ogpu.nonsense


# --- 9b: help texts ---

WATCHERS = [getattr(ogpu.events, name) for name in ogpu.events.__all__ if name.startswith("watch_")]


@pytest.mark.parametrize("watcher", WATCHERS, ids=lambda w: w.__name__)
def test_every_watcher_documents_how_to_use_it(watcher: Callable[..., Any]) -> None:
    doc = inspect.getdoc(watcher) or ""
    scope = next(iter(inspect.signature(watcher).parameters))
    for needed in (f"{scope}:", "Yields:", "Example::", f"{watcher.__name__}(", "see help(ogpu.events)"):
        assert needed in doc, f"{watcher.__name__} does not document {needed!r}"
    # What every watcher shares is said once, in help(ogpu.events) (issue 21.10).
    shared = inspect.getdoc(ogpu.events) or ""
    for needed in (
        "from_block:",
        "poll_interval:",
        "confirmations:",
        "Raises:",
        "RpcTransportError",
        "InvalidAddressError",
        "InvalidArgumentError",
        "Cancelling is\nsafe",
    ):
        assert needed in shared, f"help(ogpu.events) does not document {needed!r}"


EVENT_CLASSES = [
    cls for cls in vars(_models).values() if inspect.isclass(cls) and dataclasses.is_dataclass(cls)
]


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=lambda c: c.__name__)
def test_every_event_class_documents_each_field(cls: type) -> None:
    doc = inspect.getdoc(cls) or ""
    for field in dataclasses.fields(cls):
        assert re.search(rf"^\s*{field.name}: \S", doc, re.MULTILINE), f"{cls.__name__}.{field.name}"


def test_amounts_say_their_unit() -> None:
    for cls, field in [
        (_models.AttemptedEvent, "suggested_payment"),
        (_models.SourceParams, "min_payment"),
        (_models.SourceParams, "min_available_lockup"),
    ]:
        line = next(line for line in (cls.__doc__ or "").splitlines() if f"{field}:" in line)
        assert "wei" in line, line


def test_help_of_ogpu_events_starts_like_the_readme() -> None:
    doc = ogpu.events.__doc__ or ""
    assert "async for event in watch_attempted(" in doc
    assert "https://mainnet-rpc.ogpuscan.io" in doc and "OGPU_RPC_URL" in doc and "set_rpc" in doc
    for name in ogpu.events.__all__:
        if name.startswith("watch_"):
            assert name in doc


# --- 9c: the README's first example says which node it talks to ---


def test_the_readmes_first_example_says_which_node_and_how_to_change_it() -> None:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## Watching events")
    first_screen = readme[start : readme.index("| watcher |", start)]
    assert "mainnet" in first_screen and "https://mainnet-rpc.ogpuscan.io" in first_screen
    assert "OGPU_RPC_URL=http://127.0.0.1:8545" in first_screen
    assert 'ChainConfig.set_rpc("http://127.0.0.1:8545")' in first_screen


# --- 12: package metadata ---


def test_package_metadata_names_authors_urls_and_classifiers() -> None:
    meta = metadata.metadata("ogpu")
    authors = [*(meta.get_all("Author") or []), *(meta.get_all("Author-email") or [])]
    assert any("OpenGPU Network" in author for author in authors), authors
    urls = dict(entry.split(", ", 1) for entry in meta.get_all("Project-URL") or [])
    assert {"Homepage", "Repository", "Issues"} <= set(urls)
    assert all(url.startswith("https://") for url in urls.values())
    classifiers = meta.get_all("Classifier") or []
    assert "Framework :: AsyncIO" in classifiers and "Typing :: Typed" in classifiers
    assert "opengpu" in ",".join(meta.get_all("Keywords") or [])
    assert meta["Version"] == ogpu.__version__


# --- 13: a first run says what it installs ---


@pytest.mark.nodes
def test_make_says_what_it_installs_before_it_installs_it() -> None:
    result = subprocess.run(
        ["make", "-n", "-B", ".venv/.installed", ".cache/anvil/node_modules/.bin/anvil"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"make is not usable here: {result.stderr.strip()}")
    lines = result.stdout.splitlines()
    pip = next(i for i, line in enumerate(lines) if "pip install" in line)
    npm = next(i for i, line in enumerate(lines) if line.startswith("npm install"))
    for step in (pip, npm):
        said = [line for line in lines[:step] if line.startswith("echo ")]
        assert said, lines
    assert any("minute" in line for line in lines if line.startswith("echo ") and "pip" in line)
    assert any(re.search(r"\d+ s", line) for line in lines if line.startswith("echo ") and "npm" in line)


def test_version_sorts_after_the_upstream_release_it_succeeds() -> None:
    # Same distribution name as upstream ogpu 0.2.x: a lower version would make
    # `pip install -U ogpu` "upgrade" a user back to the old package.
    installed = tuple(int(part) for part in metadata.version("ogpu").split(".")[:3])
    assert installed > (0, 2, 3), installed
