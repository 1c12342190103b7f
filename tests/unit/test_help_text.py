"""``help(ogpu.events)`` says what the watchers share once, not seven times (issue 21.10)."""

from __future__ import annotations

import pydoc

import ogpu.events


def test_the_shared_watcher_text_appears_once_in_the_module_help() -> None:
    text = pydoc.plain(pydoc.render_doc(ogpu.events))

    assert text.count("Keyword arguments:") == 1
    assert text.count("Nothing touches the network until the first") == 1
    # The repetition was 7 x 58 lines of 1,654; the rest is pydoc's account of the event classes
    # (and of Checkpoint, about 50 lines), whose layout differs between Python releases by some
    # tens of lines (1,439 on 3.11.7, 1,475 on 3.11.2).
    assert len(text.splitlines()) < 1_550


def test_each_watcher_s_help_says_where_the_shared_text_is() -> None:
    for name in ogpu.events.__all__:
        if name.startswith("watch_"):
            doc = pydoc.plain(pydoc.render_doc(getattr(ogpu.events, name)))
            assert "see help(ogpu.events)" in doc, name
            assert len(doc.splitlines()) < 30, name
