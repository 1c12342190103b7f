"""The watchers, under the import path the ``ogpu`` package 0.2 used.

``from ogpu.events.watchers import watch_attempted`` and ``from ogpu.events
import watch_attempted`` name the same function; the watchers live in
``ogpu.events._watch.watchers``. They take 0.2's keyword names too
(``task_address=``, ``source_address=``, ``response_address=``).
"""

from __future__ import annotations

from ogpu.events._watch.watchers import (
    watch_attempted,
    watch_nexus,
    watch_registered,
    watch_response_status_changed,
    watch_response_submitted,
    watch_task_published,
    watch_task_status_changed,
)

__all__ = [
    "watch_attempted",
    "watch_nexus",
    "watch_registered",
    "watch_response_status_changed",
    "watch_response_submitted",
    "watch_task_published",
    "watch_task_status_changed",
]
