"""Several endpoints of one chain behind the interface of one ``RpcClient``.

The hub talks to an ``EndpointPool`` exactly as to a client (``call``,
``batch``, ``aclose``); the pool sends each request to ONE endpoint, the
active one, and moves on to the next at once when that endpoint fails. What
"active" means, when to switch and when to go back are decided without I/O
by ``EndpointChooser`` (``_net/choice.py``); this module only moves bytes
and reports what it saw.

What keeps a switch from losing or repeating an event:

* A request is answered whole by one endpoint: a tick's head, checks and
  cover read come from the same node, so the stream's rule that an
  ``eth_getLogs`` answer covers only blocks the same request showed by
  header holds per endpoint.
* A lone ``eth_getLogs`` (a refill, a confirmed range) is sent with the
  header of its last block in front of it, to the same endpoint: an endpoint
  that lacks that block (a lagging replacement answers ``[]`` for blocks it
  has not reached) is skipped for the next one, never believed.
* A filter belongs to the endpoint that created it. The pool hands out its
  own ids (``<node id>@<endpoint>``), sends polls and uninstalls to the
  owner, and answers a poll of a filter whose owner is not the endpoint
  serving the request with "filter not found": the stream's lost-filter path
  then installs a filter on the new endpoint and reads the gap by
  ``eth_getLogs`` from its cursor. A poll whose answer may have been
  consumed and lost is never asked again: that filter is "not found" from
  then on.
* Before an endpoint is used, its ``eth_chainId`` and block 0 must match the
  pinned chain's (the first endpoint verified); one that does not is
  excluded, with a WARNING naming it (masked), and never followed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from ogpu._errors import (
    RpcError,
    RpcHttpError,
    RpcProtocolError,
    RpcResponseError,
    RpcTransportError,
)
from ogpu.events._net.choice import EndpointChooser, EndpointState, State
from ogpu.events._net.faults import describe
from ogpu.events._net.rpc import Call, JsonRpc, RpcClient, batch_label

__all__ = ["EndpointPool", "FilterOnOtherEndpoint", "open_client"]

log = logging.getLogger("ogpu.events")

_T = TypeVar("_T")
_FILTER_METHODS = ("eth_getFilterChanges", "eth_uninstallFilter")
_BLOCK_LOOKUPS = ("eth_getBlockByNumber", "eth_getBlockByHash")
# A refused connection or a 5xx is asked once more, this much later, before
# the request moves on: a blip should not cost a switch and a refill.
_SHORT_RETRY = 0.1
# How recently another endpoint must have shown a block for its absence at
# the answering one to be a lag rather than a chain that ended lower.
_SHOWN_LATELY = 30.0
# How long closing waits for an endpoint that failed to take back its filters.
_CLOSING_UNINSTALL = 1.0
_RATE_WORDS = ("rate limit", "rate-limit", "too many requests", "throttl")


def open_client(urls: str | Sequence[str], *, announce: bool = True) -> JsonRpc:
    """A client for one URL, a pool for several (one URL behaves exactly as before pools existed).

    ``announce=False``: a side client (the command's own few calls beside
    the stream) that leaves telling of switches to the stream's pool.
    """
    urls = (urls,) if isinstance(urls, str) else tuple(urls)
    return RpcClient(urls[0]) if len(urls) == 1 else EndpointPool(urls, announce=announce)


class _NotReached(Exception):
    """The endpoint lacks the last block of an eth_getLogs range: try another, blame nobody."""


class FilterOnOtherEndpoint(RpcResponseError):
    """A poll of a filter the pool can no longer ask: its endpoint was left, or its answer lost.

    A "filter not found" like any node's, so the stream installs a new filter
    and reads the gap; a switch's expected consequence, not a node's fault.
    """


class EndpointPool:
    """One stream's endpoints, in order of preference; an ``RpcClient`` to the hub."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        clock: Callable[[], float] | None = None,
        chooser: EndpointChooser | None = None,
        announce: bool = True,
    ) -> None:
        self.urls = tuple(urls)
        self.clients = [RpcClient(url) for url in self.urls]
        self.masked_url = ", ".join(client.masked_url for client in self.clients)
        self.chooser = chooser or EndpointChooser([client.masked_url for client in self.clients])
        # Looked up here, not at import: the simulation runs the pool on virtual time.
        self._clock = clock if clock is not None else time.monotonic
        # (chain id, block 0 hash) of the first endpoint verified: every other must match.
        self._pin: tuple[int, str] | None = None
        self._pinned_by: int | None = None
        # Pool filter id -> (endpoint, the node's own id).
        self._owners: dict[str, tuple[int, str]] = {}
        self._lost: set[str] = set()
        # Node filter ids to uninstall once their endpoint answers again (it was failing).
        self._orphans: dict[int, set[str]] = {}
        self._creating: set[asyncio.Future[list[Any]]] = set()
        self._probes: dict[int, asyncio.Task[None]] = {}
        self._serving: int | None = None  # the endpoint that answered last
        self.switches = 0
        self._announce_switches = announce  # log switches at WARNING/INFO (else DEBUG)
        self._announced: int | None = None  # the active endpoint last told of

    # --- what the hub reads of a client ---

    @property
    def requests_sent(self) -> int:
        return sum(client.requests_sent for client in self.clients)

    @property
    def ever_answered(self) -> bool:
        return any(client.ever_answered for client in self.clients)

    @property
    def latency_s(self) -> float | None:
        """The last request's time at the endpoint that answers now."""
        serving = self._serving
        return None if serving is None else self.clients[serving].latency_s

    @property
    def serving(self) -> int | None:
        """The endpoint that answered the latest request."""
        return self._serving

    def serving_lags(self, height: int) -> bool:
        """Whether the endpoint answering lacks ``height``, which an endpoint of this chain showed lately."""
        serving = self._serving
        if serving is None:
            return False
        own = self.chooser.endpoints[serving].head
        if own is None or own >= height:
            return False
        # Any endpoint of this chain, this one included: a balancer whose
        # backends differ showed the block before, from its other backend.
        # Lately: a chain replaced by a shorter one (a development node
        # restarted) must not be taken for a lag for ever.
        since = self._clock() - _SHOWN_LATELY
        return any(
            e.verified
            and e.excluded is None
            and (e.top if e.top is not None else -1) >= height
            and (e.top_at if e.top_at is not None else since - 1) >= since
            for e in self.chooser.endpoints
        )

    def endpoint_states(self) -> list[tuple[EndpointState, State]]:
        """Each endpoint's record and state, in order of preference (for ``health()``)."""
        now = self._clock()
        return [(e, self.chooser.state(e.index, now)) for e in self.chooser.endpoints]

    async def aclose(self) -> None:
        probes = list(self._probes.values())
        for task in probes:
            task.cancel()
        if probes:
            await asyncio.wait(probes)
        if self._creating:
            # A filter being made for a caller that left: its id, then its uninstall.
            await asyncio.wait(list(self._creating), timeout=_CLOSING_UNINSTALL)
        # Whatever is still installed is polled by no one from here.
        for pool_id in list(self._owners):
            self._orphan(pool_id)
        try:
            for i in list(self._orphans):
                try:
                    await asyncio.wait_for(self._uninstall_orphans(i), _CLOSING_UNINSTALL)
                except (RpcError, asyncio.TimeoutError):
                    for raw in self._orphans.pop(i, set()):
                        # An endpoint left for failing: nothing the user can do, and the node expires it.
                        log.info(
                            "could not uninstall filter %s at %s; the node expires it",
                            raw,
                            self.clients[i].masked_url,
                        )
        finally:
            for client in self.clients:
                await client.aclose()

    # --- requests ---

    async def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        if method == "eth_uninstallFilter":
            return await self._uninstall(params)
        if method == "eth_getFilterChanges":
            answer = (await self.batch([(method, params)]))[0]
            if isinstance(answer, RpcResponseError):
                raise answer
            return answer
        if method == "eth_getLogs" and params and _block_guard(params[0]) is not None:
            return await self._on_some_endpoint(lambda i: self._logs_at(i, params[0]), method)
        ask = self._on_some_endpoint(lambda i: self._batch_at(i, [(method, params)]), method)
        answers = await (self._create_filter(ask) if method == "eth_newFilter" else ask)
        if isinstance(answers[0], RpcResponseError):
            raise answers[0]
        if answers[0] is None and method in _BLOCK_LOOKUPS and params and params[0] != "latest":
            return await self._found_elsewhere(method, params)
        return answers[0]

    async def _found_elsewhere(self, method: str, params: Sequence[Any]) -> Any:
        """A block one endpoint lacks (null), from another that has it, if any does.

        A block by hash is the same block wherever it is found, and one by
        number is judged against the pinned chain by its caller: asking the
        others only spares a caller (an after= check) from taking a lagging
        endpoint's "not there" for "no longer on the chain".
        """
        now = self._clock()
        serving = self._serving
        tries = [i for i in self.chooser.order(now) if i != serving and self.chooser.endpoints[i].verified]
        if serving is not None and method == "eth_getBlockByNumber" and str(params[0]).startswith("0x"):
            top = self.chooser.endpoints[serving].top
            if top is not None and top >= int(str(params[0]), 16):
                # It showed a head at or above that block: a balancer's backend
                # behind answered. Asked again, another backend may answer.
                tries = [serving, serving, *tries]
        for i in tries:
            try:
                answer = await self.clients[i].call(method, list(params))
            except RpcError:
                continue
            if answer is not None:
                return answer
        return None

    async def _create_filter(self, ask: Awaitable[list[Any]]) -> list[Any]:
        """eth_newFilter that, if its caller gives up, still ends with the filter uninstalled.

        Failing over can make a creation slow (an endpoint that never answers
        costs a timeout before the next is asked): a stream closing meanwhile
        must not leave behind the filter the next endpoint then makes.
        """
        task = asyncio.ensure_future(ask)
        self._creating.add(task)
        task.add_done_callback(self._creating.discard)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(self._orphan_created)
            raise

    def _orphan_created(self, task: asyncio.Future[list[Any]]) -> None:
        if task.cancelled() or task.exception() is not None:
            return
        self._orphan(str(task.result()[0]))

    async def batch(self, calls: Sequence[Call]) -> list[Any]:
        return await self._on_some_endpoint(lambda i: self._batch_at(i, calls), batch_label(calls))

    async def _on_some_endpoint(self, send: Callable[[int], Awaitable[_T]], label: str) -> _T:
        """``send`` to the active endpoint; on an endpoint's fault, to the next, at once."""
        errors: list[tuple[int, RpcError]] = []
        lacking: list[int] = []
        order = self.chooser.order(self._clock())
        self._announce()
        for i in order:
            if not await self._ready(i, errors):
                continue
            for attempt in range(2):
                started = self._clock()
                self.chooser.request_sent()
                try:
                    result = await send(i)
                except _NotReached:
                    lacking.append(i)
                    break
                except RpcError as exc:
                    if not _endpoint_fault(exc):
                        raise
                    if attempt == 0 and _worth_asking_again(exc):
                        await asyncio.sleep(_SHORT_RETRY)
                        continue
                    self._failed(i, exc)
                    errors.append((i, exc))
                    break
                self._answered(i, self._clock() - started)
                return result
        if lacking and not errors:
            names = ", ".join(self.chooser.endpoints[i].name for i in lacking)
            raise RpcResponseError(
                "block not found yet at any endpoint (each lags the range asked)",
                code=-32000,
                url=names,
                method=label,
            )
        raise self._all_failed(errors, label)

    async def _batch_at(self, i: int, calls: Sequence[Call]) -> list[Any]:
        """``calls`` at endpoint ``i``; polls of filters it does not own are answered "not found" here."""
        out: list[Any] = [None] * len(calls)
        sent: list[Call] = []
        where: list[int] = []
        polled: list[str] = []
        for k, (method, params) in enumerate(calls):
            if method in _FILTER_METHODS:
                pool_id = str(params[0]) if params else ""
                owner = self._owners.get(pool_id)
                if owner is None or owner[0] != i or pool_id in self._lost:
                    out[k] = self._not_found(method, pool_id, i)
                    continue
                params = [owner[1], *params[1:]]
                polled.append(pool_id)
            sent.append((method, params))
            where.append(k)
        try:
            answers = await self.clients[i].batch(sent) if sent else []
        except RpcError as exc:
            if polled and _may_be_consumed(exc):
                # The node may have handed over (and forgotten) these changes:
                # asking the filter again would skip them. A new one refills.
                self._lost.update(polled)
            raise
        for k, (method, params), answer in zip(where, sent, answers, strict=True):
            if method == "eth_newFilter" and isinstance(answer, str):
                pool_id = f"{answer}@{i}"
                self._owners[pool_id] = (i, answer)
                answer = pool_id
            elif _is_latest(method, params) and isinstance(answer, dict):
                self._saw_head(i, answer)
            out[k] = answer
        return out

    async def _logs_at(self, i: int, query: dict[str, Any]) -> Any:
        """eth_getLogs with the header of its last block (or of the block it names by hash) asked
        first, from the same endpoint: an endpoint that lacks the block answers ``[]`` for it."""
        guard = _block_guard(query)
        assert guard is not None
        header, logs = await self.clients[i].batch([guard, ("eth_getLogs", [query])])
        if header is None or isinstance(header, BaseException):
            raise _NotReached
        if isinstance(logs, BaseException):
            raise logs
        return logs

    async def _uninstall(self, params: Sequence[Any]) -> Any:
        """At the filter's owner: a filter is removed where it was made.

        An owner that is failing (cooling, a Retry-After running) is not
        pressed: the filter is uninstalled when it answers again, or when the
        pool closes. The stream is told it is done either way.
        """
        pool_id = str(params[0]) if params else ""
        owner = self._owners.get(pool_id)
        if owner is None:
            return False
        i, raw = owner
        if not self.chooser.endpoints[i].proven:
            self._orphan(pool_id)
            return True
        try:
            answer = await self.clients[i].call("eth_uninstallFilter", [raw, *params[1:]])
        except RpcError as exc:
            if not _endpoint_fault(exc):
                raise
            self._failed(i, exc)
            self._orphan(pool_id)
            return True
        # Forgotten only now: a caller cancelled during the call (a time box)
        # leaves it to the next try, or to aclose.
        self._owners.pop(pool_id, None)
        self._lost.discard(pool_id)
        return answer

    def _orphan(self, pool_id: str) -> None:
        """No stream polls this filter again: uninstalled when its endpoint answers, or at close."""
        owner = self._owners.pop(pool_id, None)
        self._lost.discard(pool_id)
        if owner is not None:
            self._orphans.setdefault(owner[0], set()).add(owner[1])

    async def _uninstall_orphans(self, i: int) -> None:
        """The filters endpoint ``i`` still holds from before it failed, now that it answers."""
        for raw in sorted(self._orphans.get(i, set())):
            await self.clients[i].call("eth_uninstallFilter", [raw])
            self._orphans[i].discard(raw)
        self._orphans.pop(i, None)

    def _not_found(self, method: str, pool_id: str, i: int) -> Any:
        if method == "eth_uninstallFilter":
            return False
        return FilterOnOtherEndpoint(
            "filter not found (it belongs to another endpoint, or its changes were lost)",
            code=-32000,
            url=self.clients[i].masked_url,
            method=method,
        )

    # --- verifying, probing, bookkeeping ---

    async def _ready(self, i: int, errors: list[tuple[int, RpcError]]) -> bool:
        """Whether endpoint ``i`` may be used: verified on the pinned chain (asked now if never)."""
        e = self.chooser.endpoints[i]
        if e.excluded is not None:
            return False
        if e.verified:
            return True
        try:
            await self._verify(i)
        except RpcError as exc:
            # Whatever the reason, an endpoint that cannot say which chain it
            # serves is not used this time.
            self._failed(i, exc)
            errors.append((i, exc))
            return False
        return e.excluded is None

    async def _verify(self, i: int) -> None:
        """eth_chainId and block 0 against the pinned chain; the latest head alongside."""
        started = self._clock()
        chain_id, genesis, latest = await self.clients[i].batch(
            [
                ("eth_chainId", []),
                ("eth_getBlockByNumber", ["0x0", False]),
                ("eth_getBlockByNumber", ["latest", False]),
            ]
        )
        for answer in (chain_id, genesis, latest):
            if isinstance(answer, RpcError):
                raise answer
        try:
            actual = (int(chain_id, 16), str(genesis["hash"]).lower())
        except (TypeError, ValueError, KeyError):
            raise RpcProtocolError(
                f"eth_chainId {chain_id!r:.40} and block 0 {genesis!r:.60} cannot be read",
                url=self.clients[i].masked_url,
                method="eth_chainId",
            ) from None
        name = self.clients[i].masked_url
        if self._pin is None:
            self._pin, self._pinned_by = actual, i
            # What -v shows of the endpoints (the command logs INFO there).
            log.info(
                "following chain %d through %d endpoints, in order of preference: %s (chain pinned by %s)",
                actual[0],
                len(self.clients),
                self.masked_url,
                name,
            )
        elif actual != self._pin:
            assert self._pinned_by is not None
            pinned = self.clients[self._pinned_by].masked_url
            if actual[0] != self._pin[0]:
                why = f"it serves chain {actual[0]}, not chain {self._pin[0]} that {pinned} serves"
            else:
                why = f"its block 0 is {actual[1]}, not {self._pin[1]} as at {pinned} (another network)"
            log.warning("endpoint %s excluded: %s; it is never followed", name, why)
            self.chooser.exclude(i, f"excluded: {why}")
            return
        self.chooser.verified(i)
        self.chooser.answered(i, self._clock(), self._clock() - started)
        if isinstance(latest, dict):
            self._saw_head(i, latest)

    async def _probe(self, i: int) -> None:
        self.chooser.probed(i, self._clock())
        try:
            if not self.chooser.endpoints[i].verified:
                await self._verify(i)
                return
            started = self._clock()
            latest = await self.clients[i].call("eth_getBlockByNumber", ["latest", False])
            self.chooser.answered(i, self._clock(), self._clock() - started)
            if isinstance(latest, dict):
                self._saw_head(i, latest)
            if self._orphans.get(i):
                await self._uninstall_orphans(i)
        except RpcError as exc:
            self._failed(i, exc)
            log.debug("probe of %s failed: %s", self.clients[i].masked_url, describe(exc))
        except Exception as exc:
            # Nobody awaits a probe: what escapes here would vanish unseen.
            log.warning("probe of %s failed unexpectedly: %r", self.clients[i].masked_url, exc)
            self.chooser.failed(i, self._clock(), describe(exc))
        finally:
            self._probes.pop(i, None)

    def _start_probes(self) -> None:
        for i in self.chooser.probes_due(self._clock()):
            if i not in self._probes:
                self._probes[i] = asyncio.get_running_loop().create_task(
                    self._probe(i), name=f"ogpu.events probe {self.clients[i].masked_url}"
                )

    def _saw_head(self, i: int, header: dict[str, Any]) -> None:
        try:
            number = int(header["number"], 16)
        except (TypeError, ValueError, KeyError):
            return
        self.chooser.answered(i, self._clock(), head=number)

    def _answered(self, i: int, latency: float) -> None:
        self.chooser.answered(i, self._clock(), latency)
        self._serving = i
        self._start_probes()

    def _announce(self) -> None:
        """One line when the active endpoint changes (not for one request that went elsewhere)."""
        active = self.chooser.active_index
        if active is None or active == self._announced:
            return
        previous, self._announced = self._announced, active
        loud = logging.WARNING if self._announce_switches else logging.DEBUG
        new = self.clients[active].masked_url
        if previous is None:
            if active != 0:
                # Not a switch, but the user listed another endpoint first: say why it is not used.
                first = self.chooser.endpoints[0]
                why = "is excluded" if first.excluded else f"failed ({first.last_error or 'no answer'})"
                log.log(loud, "using endpoint %s: %s %s", new, first.name, why)
            return
        self.switches += 1
        old = self.clients[previous].masked_url
        if active < previous:
            quiet = logging.INFO if self._announce_switches else logging.DEBUG
            log.log(quiet, "switched back to endpoint %s from %s: it is healthy and current again", new, old)
        else:
            why = self.chooser.why_not(previous, self._clock())
            log.log(loud, "switched from endpoint %s to %s: %s", old, new, why)

    def _failed(self, i: int, exc: RpcError) -> None:
        # An endpoint that failed may come back restarted, its filters gone
        # (and some nodes then answer [] for them, not "not found"): the
        # stream's filters there are not polled again; new ones refill.
        self._lost.update(pool_id for pool_id, (owner, _) in self._owners.items() if owner == i)
        retry_after = None
        if isinstance(exc, RpcHttpError) and exc.status == 429:
            retry_after = exc.retry_after if exc.retry_after is not None else 1.0
        self.chooser.failed(i, self._clock(), describe(exc), retry_after)

    def _all_failed(self, errors: list[tuple[int, RpcError]], label: str) -> RpcError:
        """One error naming every endpoint tried, of the kind the most preferred one raised."""
        if not errors:
            wait = self.chooser.wait_hint(self._clock())
            return RpcHttpError(
                "every endpoint is cooling down after HTTP 429 (too many requests)",
                status=429,
                retry_after=wait,
                url=self.masked_url,
                method=label,
            )
        errors.sort(key=lambda item: item[0])
        said = "; ".join(f"{self.clients[i].masked_url}: {describe(exc)}" for i, exc in errors)
        message = f"every endpoint failed ({said})"
        names = ", ".join(self.clients[i].masked_url for i, _ in errors)
        first = errors[0][1]
        if isinstance(first, RpcTransportError):
            transport = [exc for _, exc in errors if isinstance(exc, RpcTransportError)]
            return RpcTransportError(
                message,
                url=names,
                method=label,
                maybe_processed=any(exc.maybe_processed for exc in transport),
                unreachable=all(exc.unreachable for exc in transport),
                timed_out=all(exc.timed_out for exc in transport),
            )
        if isinstance(first, RpcHttpError):
            return RpcHttpError(
                message,
                status=first.status,
                retry_after=self.chooser.wait_hint(self._clock()),
                url=names,
                method=label,
            )
        if isinstance(first, RpcResponseError):
            return RpcResponseError(message, code=first.code, data=first.data, url=names, method=label)
        return RpcProtocolError(message, url=names, method=label)


def _endpoint_fault(exc: RpcError) -> bool:
    """A fault of the endpoint (move on to another), not an answer to the call."""
    if isinstance(exc, RpcTransportError | RpcHttpError | RpcProtocolError):
        return True
    if isinstance(exc, RpcResponseError):
        message = (exc.args[0] if exc.args else "").lower()
        return exc.code == 429 or any(word in message for word in _RATE_WORDS)
    return False


def _worth_asking_again(exc: RpcError) -> bool:
    """A refused connection or a 5xx: often a blip. A timeout already took its time; a 429 said wait."""
    if isinstance(exc, RpcTransportError):
        return exc.unreachable
    return isinstance(exc, RpcHttpError) and exc.status >= 500


def _may_be_consumed(exc: RpcError) -> bool:
    if isinstance(exc, RpcTransportError):
        return exc.maybe_processed
    if isinstance(exc, RpcHttpError):
        return exc.status != 429
    return True


def _is_latest(method: str, params: Sequence[Any]) -> bool:
    return method == "eth_getBlockByNumber" and bool(params) and params[0] == "latest"


def _block_guard(query: object) -> tuple[str, list[Any]] | None:
    """The header call that shows an endpoint has the block an eth_getLogs query ends at, if any."""
    end = _numbered_end(query)
    if end is not None:
        return ("eth_getBlockByNumber", [end, False])
    block_hash = query.get("blockHash") if isinstance(query, dict) else None
    if isinstance(block_hash, str):
        return ("eth_getBlockByHash", [block_hash, False])
    return None


def _numbered_end(query: object) -> str | None:
    """The hex ``toBlock`` of an eth_getLogs query, if it names a block by number."""
    if not isinstance(query, dict):
        return None
    end = query.get("toBlock")
    return end if isinstance(end, str) and end.startswith("0x") else None
