"""``ogpu.set_verbose``: the library's INFO log on stderr, for people who configure no logging.

What a recovery does (a lost filter refilled, a batch refused, a reorg
followed) is logged at INFO on ``logging.getLogger("ogpu.events")``;
warnings show without any of this, through Python's last-resort handler.
Services that configure ``logging`` themselves set the ``ogpu`` logger's
level instead and never need this switch.
"""

from __future__ import annotations

import logging
import sys

from ogpu._errors import InvalidArgumentError

__all__ = ["set_verbose", "verbose_from_environment"]

_LOGGER = logging.getLogger("ogpu")
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# The handler set_verbose added and the level the logger had before, so a
# second call adds nothing and set_verbose(False) puts back what was there.
_handler: logging.Handler | None = None
_level_before = logging.NOTSET


def set_verbose(enabled: bool = True, level: int = logging.INFO) -> None:
    """Show the ``ogpu`` log on stderr from ``level`` up (``True``), or stop (``False``).

    ``ogpu.set_verbose()`` adds one stderr handler to the ``ogpu`` logger and
    sets its level (default INFO: every retry and recovery; the library logs
    nothing below that). Calling it again only changes the level;
    ``set_verbose(False)`` removes the handler and restores the level the
    logger had before. ``OGPU_VERBOSE=1`` (or ``true``, ``yes``) in the
    environment does ``set_verbose(True)`` at ``import ogpu``.
    """
    global _handler, _level_before
    if not isinstance(enabled, bool):
        raise InvalidArgumentError(f"set_verbose() takes True or False, got {enabled!r}")
    if enabled:
        if _handler is None:
            _handler = logging.StreamHandler(sys.stderr)
            _handler.setFormatter(logging.Formatter(_FORMAT))
            _level_before = _LOGGER.level
            _LOGGER.addHandler(_handler)
        _LOGGER.setLevel(level)
    elif _handler is not None:
        _LOGGER.removeHandler(_handler)
        _handler = None
        _LOGGER.setLevel(_level_before)


def verbose_from_environment(value: str) -> None:
    """Apply ``OGPU_VERBOSE``: ``1``, ``true`` or ``yes`` (any case) turn verbose logging on."""
    if value.strip().lower() in ("1", "true", "yes", "on"):
        set_verbose(True)
