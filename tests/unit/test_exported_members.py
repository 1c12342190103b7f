"""The public surface: every public name is exported, sorted, and importable."""

from __future__ import annotations

import types

import pytest

import ogpu
import ogpu.chain
import ogpu.chain.config
import ogpu.events
import ogpu.events.testing
import ogpu.events.types
import ogpu.events.watchers
import ogpu.types
import ogpu.types.enums
import ogpu.types.errors

PUBLIC_MODULES = [
    ogpu,
    ogpu.chain,
    ogpu.chain.config,
    ogpu.events,
    ogpu.events.testing,
    ogpu.events.types,
    ogpu.events.watchers,
    ogpu.types,
    ogpu.types.enums,
    ogpu.types.errors,
]


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda m: m.__name__)
def test_all_lists_every_public_name_sorted(module: types.ModuleType) -> None:
    # Names from ogpu itself (imports such as IntEnum are not part of the surface).
    from_ogpu = {
        name: str(getattr(value, "__module__", ""))
        for name, value in vars(module).items()
        if not name.startswith("_") and str(getattr(value, "__module__", "")).startswith("ogpu")
    }
    # A module that defines names exports those (what it imports, such as an
    # error to raise, it only uses); one that defines none re-exports all it holds.
    own = {name for name, origin in from_ogpu.items() if origin == module.__name__}
    public = own or set(from_ogpu)
    assert public <= set(module.__all__), "public names missing from __all__"
    assert all(hasattr(module, name) for name in module.__all__), "__all__ names something absent"
    assert list(module.__all__) == sorted(module.__all__)


def test_the_guides_names_are_in_ogpu_events() -> None:
    for name in [
        "watch_task_published",
        "watch_attempted",
        "watch_response_submitted",
        "watch_response_status_changed",
        "watch_task_status_changed",
        "watch_registered",
        "TaskPublishedEvent",
        "AttemptedEvent",
        "ResponseSubmittedEvent",
        "ResponseStatusChangedEvent",
        "TaskStatusChangedEvent",
        "RegisteredEvent",
    ]:
        assert name in ogpu.events.__all__
