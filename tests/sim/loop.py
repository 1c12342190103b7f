"""An asyncio event loop on virtual time: when nothing is ready, the clock jumps to the next timer.

The stream and the in-memory node do no real I/O (the node is an httpx
transport), so every wait in a simulation is a timer: a poll interval, a
backoff, a ``wait_for`` deadline, a simulated network latency. This loop
never sleeps for them; its selector, asked to wait ``timeout`` seconds with
nothing to read, moves the clock on by ``timeout`` and returns at once. A
minute of the stream's life costs only the CPU its ticks take, and the order
in which timers fire depends on nothing but what was scheduled: no wall
clock, no scheduler noise.

Why our own loop rather than a library (``looptime``): it is forty lines on
top of ``asyncio.SelectorEventLoop``, it adds no test dependency, and it
refuses outright to wait forever (``SimulationDeadlock``) where a real loop
would hang.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

__all__ = ["SimulationDeadlock", "VirtualClockLoop", "run_virtual"]

_T = TypeVar("_T")


class SimulationDeadlock(RuntimeError):
    """Nothing is ready and no timer is set: the simulated world would wait forever."""


class _VirtualSelector(selectors.BaseSelector):
    """A real selector (for the loop's self-pipe) that never blocks: waiting advances the clock."""

    def __init__(self) -> None:
        self._real = selectors.DefaultSelector()
        self.loop: VirtualClockLoop | None = None

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._real.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            raise SimulationDeadlock("no task is ready and no timer is set: the simulation would hang")
        assert self.loop is not None
        self.loop.advance(timeout)
        return []

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """``asyncio.SelectorEventLoop`` whose ``time()`` is a virtual clock, starting at 0."""

    def __init__(self) -> None:
        selector = _VirtualSelector()
        super().__init__(selector)
        selector.loop = self
        self._virtual_now = 0.0

    def time(self) -> float:
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        # The loop adds its clock resolution when it collects due timers, so
        # now + (when - now) landing an ulp short of ``when`` still fires it.
        self._virtual_now += max(0.0, seconds)


def run_virtual(main: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run`` on a fresh :class:`VirtualClockLoop` (``asyncio.Runner`` is 3.11+ only)."""
    loop = VirtualClockLoop()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
