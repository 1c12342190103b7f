"""``ogpu-events``: follow the Nexus from a terminal.

Three commands over the library's shared stream: ``watch`` runs one of the
six scoped watchers, ``tail`` the unscoped ``watch_nexus`` stream, ``demo``
the README's walk through a task lifecycle on a local anvil. Only the
standard library's ``argparse`` is used, so the command costs no dependency.

The process ends in one of a few ways, each with its own exit code, and
never with a traceback: the events asked for arrived (0), the node failed
(1), the input was wrong (2), nothing came in time (3), Ctrl-C (130). On
every path the watcher's generator is closed before the event loop ends,
which takes it off the stream and uninstalls the node filter.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import math
import os
import select
import shutil
import signal
import sys
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from ogpu import set_verbose
from ogpu.chain import ChainConfig, mask_url, parse_chain, validate_rpc_url
from ogpu.events._cli.output import CatchUpProgress, fit_width, human_header, human_line, json_line
from ogpu.events._cli.versions import version_lines
from ogpu.events._codec.abi import EVENTS, EventSpec, event_named, snake_case, spelling_key
from ogpu.events._codec.address import normalize_address
from ogpu.events._net.faults import STARTUP_RETRY, Fault, Retrier, classify
from ogpu.events._stream.control import (
    SCOPED_WATCHERS,
    failing_now,
    health,
    maybe_header,
    open_stream,
    startup_deadline,
)
from ogpu.types import (
    CheckpointMismatchError,
    CheckpointVersionError,
    ConfigError,
    InvalidArgumentError,
    OGPUError,
    RpcError,
    RpcResponseError,
)

# The transport (httpx) and the dev nodes are imported where they are used:
# --help, --version and bad arguments answer without loading them.
if TYPE_CHECKING:
    from ogpu.events._checkpoint.store import Checkpoint
    from ogpu.events._cli.state import FollowedEvents, StateFile
    from ogpu.events._codec.position import EventPosition
    from ogpu.events._net.rpc import JsonRpc

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
    "KINDS",
    "build_parser",
    "main",
    "stream_events",
]

PROG = "ogpu-events"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, as shells report it

# Read by the command only (the library keeps its own deadline): lets tests
# and impatient operators give up on a dead endpoint sooner than 10 s.
STARTUP_DEADLINE_ENV = "OGPU_STARTUP_DEADLINE"
# How long a terminal user waits in silence for a node's first answer
# before being told what the command is waiting for.
WAITING_NOTICE_AFTER = 2.0
# Events printed together share one request for their blocks' headers.
_QUEUE_SIZE = 256


def _kebab(event_name: str) -> str:
    return snake_case(event_name).replace("_", "-")


# watch KIND -> watcher name, e.g. "task-status-changed" -> "watch_task_status_changed"
KINDS: dict[str, str] = {_kebab(event): watcher for watcher, (event, _) in SCOPED_WATCHERS.items()}

_EXAMPLES = """\
examples:
  # every attempt on one task, as it happens
  ogpu-events watch attempted 0xTASK --rpc https://mainnet-rpc.ogpuscan.io

  # wait at most two minutes for the task to be finalized, as JSON for jq
  ogpu-events watch task-status-changed 0xTASK --json --count 1 --timeout 120

  # the last 5,000 blocks of a source's registrations, then live
  ogpu-events watch registered 0xSOURCE --from-block -5000

  # every Nexus event on testnet; or only some kinds of them
  ogpu-events tail --chain testnet
  ogpu-events tail SourceUpdated source-status-changed --json

  # a local anvil, one task lifecycle, the six watchers printing
  ogpu-events demo

options shared by watch and tail:
  KIND, EVENT and --chain take any spelling: attempted, Attempted,
  task_published, TaskPublished, task-published; mainnet, testnet or a
  chain id (1071).
  --timeout S counts from the node's first answer and again after each
  event: the command exits with code 3 when S seconds pass with no
  (further) event. A node that cannot be reached, or is failing when S
  passes, is exit 1, not 3.
  --from-block -N starts N blocks before the head (read once at start).
  --state FILE saves the position of each event once its line is out;
  the next run with the same FILE resumes right after it (--from-block
  then applies only while FILE does not exist). After a kill -9, at most
  the one event being printed shows again; nothing is skipped.
  --state sqlite:///PATH or postgresql://USER@HOST/DB keeps the position
  in a database table instead (one row per kind of command); with
  --lease S, several copies of the command take turns: one prints, the
  others wait and take over within S seconds of its end.

exit codes:
  0 done (--count reached), 1 the node failed or could not be reached,
  2 bad input (a --state FILE that cannot be used, too),
  3 --timeout passed without an event, 130 interrupted (Ctrl-C),
  143 terminated (SIGTERM)

environment:
  OGPU_RPC_URL, OGPU_CHAIN   defaults for --rpc (several: comma separated) and --chain
  OGPU_STARTUP_DEADLINE      at most this many seconds of retrying a node
                             that has never answered (default: 10; refused
                             connections give up after 1.5 s, answers that
                             are not JSON-RPC after 3 s)
"""


class _Failure(Exception):
    """A failure the command reports in one line and exits with ``code``."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


# --- argument parsing ---


def _number(
    kind: Callable[[str], Any], what: str, minimum: float, *, strict: bool = False
) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a number, got {text!r}") from None
        if not math.isfinite(value) or value < minimum or (strict and value == minimum):
            bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
            raise argparse.ArgumentTypeError(f"{what} must be {bound}, got {text!r}")
        return value

    return parse


def _block(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"a block number (negative: that many blocks before the head), got {text!r}"
        ) from None


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("connection")
    group.add_argument(
        "--rpc",
        metavar="URL",
        action="append",
        help="JSON-RPC endpoint; repeat for several, in order of preference "
        "(default: $OGPU_RPC_URL, comma separated, else the chain's)",
    )
    group.add_argument(
        "--chain",
        metavar="CHAIN",
        help="mainnet, testnet or a chain id: the Nexus to follow (default: $OGPU_CHAIN or mainnet)",
    )
    group = common.add_argument_group("stream")
    group.add_argument(
        "--from-block",
        type=_block,
        metavar="N",
        help="start at block N, history first; -N = N blocks before the head (default: new events only)",
    )
    group.add_argument(
        "--state",
        metavar="FILE|URL",
        help="resume after the event saved in FILE, and save each event's position there once printed; "
        "or a database: sqlite:///PATH or postgresql://USER@HOST/DB",
    )
    group.add_argument(
        "--lease",
        type=_number(float, "--lease", 0, strict=True),
        metavar="S",
        help="with --state URL: one of several replicas; one prints, the others wait (lease: S seconds)",
    )
    group.add_argument(
        "--poll-interval",
        type=_number(float, "--poll-interval", 0, strict=True),
        default=2.0,
        metavar="S",
        help="seconds between polls (default: 2)",
    )
    group.add_argument(
        "--confirmations",
        type=_number(int, "--confirmations", 0),
        default=0,
        metavar="N",
        help="only show events N blocks deep, safe from reorgs (default: 0)",
    )
    group = common.add_argument_group("output")
    group.add_argument("--count", type=_number(int, "--count", 1), metavar="N", help="exit 0 after N events")
    group.add_argument(
        "--timeout",
        type=_number(float, "--timeout", 0, strict=True),
        metavar="S",
        help="exit 3 when no (further) event comes within S seconds",
    )
    group.add_argument("--json", action="store_true", help="one JSON object per line")
    group.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also log INFO lines and the retries of a node not answering yet (warnings show anyway)",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Follow the OpenGPU Nexus contract's events from a terminal.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="store_true", help="show the version (with -v: and its dependencies') and exit"
    )
    # Its own dest: a subcommand's default for "verbose" would overwrite it.
    parser.add_argument("-v", "--verbose", dest="verbose_top", action="store_true", help=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = _common_options()
    watch = commands.add_parser(
        "watch",
        parents=[common],
        help="one of the six scoped watchers",
        description="Run one scoped watcher: events of KIND whose scoping address is ADDRESS.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    watch.add_argument(
        "kind",
        metavar="KIND",
        help="; ".join(f"{kind} (by {SCOPED_WATCHERS[w][1]})" for kind, w in KINDS.items())
        + " (any spelling: Attempted, task_published)",
    )
    watch.add_argument("address", metavar="ADDRESS", help="the task, source or response address")
    tail = commands.add_parser(
        "tail",
        parents=[common],
        help="every Nexus event, unscoped",
        description="Follow every Nexus event, or only the EVENT kinds named.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tail.add_argument(
        "events",
        metavar="EVENT",
        nargs="*",
        help="event names like TaskPublished or source-updated (default: all): " + ", ".join(EVENTS),
    )
    commands.add_parser(
        "demo",
        help="local anvil, one task lifecycle, the six watchers printing",
        description="Start anvil, play one task lifecycle and show the six watchers yielding its events.",
    )
    return parser


# --- what to follow ---


def _event_spec(name: str) -> EventSpec:
    spec = event_named(name)
    if spec is not None:
        return spec
    known = ", ".join(_kebab(n) for n in EVENTS)
    raise _Failure(f"unknown event {name!r}; known: {known}", EXIT_USAGE)


def _watcher_for(kind: str) -> str:
    for known, watcher in KINDS.items():
        if spelling_key(known) == spelling_key(kind):
            return watcher
    raise _Failure(f"unknown KIND {kind!r} for watch; known: {', '.join(KINDS)}", EXIT_USAGE)


def _target(args: argparse.Namespace) -> tuple[tuple[EventSpec, ...], str | None, str | None, str]:
    """(specs, scoping field, scoping address, label) of the stream the command asked for."""
    if args.command == "watch":
        watcher = _watcher_for(args.kind)
        event, field = SCOPED_WATCHERS[watcher]
        scope = normalize_address(args.address, what=f"{_kebab(event)} {field} address")
        return (EVENTS[event],), field, scope, f"{watcher}(0x{scope})"
    named = {spec.name: spec for spec in map(_event_spec, args.events)}  # dedupe, keep order
    specs = tuple(named.values()) or tuple(EVENTS.values())
    return specs, None, None, "watch_nexus"


def _configure_chain(args: argparse.Namespace) -> str:
    if args.chain is not None:
        ChainConfig.set_chain(parse_chain(args.chain))
    if args.rpc is not None:  # a list: --rpc may be given several times
        ChainConfig.set_rpc(args.rpc)
    return validate_rpc_url(ChainConfig.get_rpc())


def _startup_deadline() -> float | None:
    """The operator's OGPU_STARTUP_DEADLINE in seconds; None when unset (the library's 10 s)."""
    text = os.environ.get(STARTUP_DEADLINE_ENV)
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        raise _Failure(
            f"{STARTUP_DEADLINE_ENV} must be a number of seconds, got {text!r}", EXIT_USAGE
        ) from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise _Failure(f"{STARTUP_DEADLINE_ENV} must be > 0, got {text!r}", EXIT_USAGE)
    return seconds


async def _head(client: JsonRpc) -> int:
    """The node's head block, retried like the stream retries until the startup deadline."""
    return await _ask_number(client, "eth_blockNumber", "reading the head block")


async def _ask_number(client: JsonRpc, method: str, doing: str) -> int:
    """A number the node answers ``method`` with, retried until the startup deadline."""
    retrier = Retrier(lambda: client.ever_answered, client.masked_url)
    while True:
        try:
            answer = await client.call(method)
            break
        except RpcError as exc:
            if classify(exc) is not Fault.TRANSIENT:
                raise
            await retrier.pause(exc, doing)
    try:
        return int(answer, 16)
    except (TypeError, ValueError):
        raise _Failure(
            f"the node at {client.masked_url} answered {method} with {answer!r}", EXIT_FAILED
        ) from None


async def _resume_from_state(
    args: argparse.Namespace,
    client: JsonRpc,
    specs: tuple[EventSpec, ...],
    field: str | None,
    scope: str | None,
) -> tuple[StateFile, FollowedEvents, EventPosition | None]:
    """The --state file, what it follows, and the position saved in it (None: a new file).

    The file is read before anything touches the network (an unreadable one
    is bad input, whatever the node says), then checked against the chain
    the node serves.
    """
    from ogpu.events._cli.state import FollowedEvents, StateFile

    state = StateFile(args.state)
    state.lock()  # before anything else: a second command on the file is refused at once
    try:
        saved = state.load()
        chain_id = await _ask_number(client, "eth_chainId", "reading the chain id")
        genesis = await _genesis(client)
        nexus = ChainConfig.get_contract_address("NEXUS").lower()
        followed = FollowedEvents(chain_id, nexus, tuple(spec.name for spec in specs), field, scope, genesis)
        if saved is not None:
            state.check(saved[0], followed)
            # Another block 0, or (a development node restarted with a fixed
            # genesis) a chain that stays below the saved block and does not
            # know it by hash: the saved position belongs to no block of it.
            if StateFile.replaced(saved[0], followed) or await _ends_below(client, saved[1]):
                start = args.from_block if args.from_block is not None and args.from_block >= 0 else 0
                logging.getLogger("ogpu.events").warning(
                    "the state file %s was saved on a chain the node no longer serves (block 0 %s; "
                    "the saved block %d is above its head and unknown to it: a development node "
                    "restarted?); its position %s no longer applies: following the new chain from block %d",
                    args.state,
                    "differs" if StateFile.replaced(saved[0], followed) else "is the same",
                    saved[1].block_number,
                    saved[1],
                    start,
                )
                args.from_block = start
                return state, followed, None
    except BaseException:
        state.release()
        raise
    return state, followed, None if saved is None else saved[1]


# How long a node whose head is below a --state file's block is waited for
# (a backend behind catches up) before its chain is taken for another one.
STATE_REACH_WAIT = 10.0


async def _ends_below(client: JsonRpc, position: EventPosition) -> bool:
    """Whether the node's chain stays below ``position``'s block and does not know that block.

    A backend behind catches up within seconds; a development node restarted
    on a shorter chain never does. Waited for ``STATE_REACH_WAIT`` seconds.
    """
    if position.block_hash is None:
        return False
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STATE_REACH_WAIT
    while await _head(client) < position.block_number:
        if await client.call("eth_getBlockByHash", [position.block_hash, False]) is not None:
            return False  # the node has the block: only its head lags
        if loop.time() >= deadline:
            return True
        await asyncio.sleep(0.5)
    return False


async def _genesis(client: JsonRpc) -> str | None:
    """Block 0's hash, or None if the node will not say (a pruned node): then it is not compared."""
    try:
        header = maybe_header(await client.call("eth_getBlockByNumber", ["0x0", False]), "0x0")
    except RpcError as exc:
        if classify(exc) is not Fault.TRANSIENT:
            return None
        header = None
    return None if header is None else header.hash


def _answered(client: JsonRpc) -> bool:
    """Whether the node has given any JSON-RPC answer, to the stream or to the command."""
    return client.ever_answered or any(
        endpoint.answered for stream in health() for endpoint in stream.endpoints
    )


async def _waiting_notice(client: JsonRpc, err: TextIO, after: float) -> None:
    """One line on a terminal when the node keeps the user waiting for its first answer."""
    await asyncio.sleep(after)
    if not _answered(client):
        err.write(f"{PROG}: waiting for {client.masked_url}\u2026\n")
        err.flush()


async def _chain_notice(client: JsonRpc, err: TextIO, served: int | None) -> None:
    """One line when the node serves another chain than the configured one.

    Legitimate (a local node under the mainnet configuration, as the demo
    runs), so not an error; but the Nexus address followed is the configured
    chain's, and a user who meant another chain should hear it at once, not
    after a silent ``--timeout``.
    """
    if served is None:
        # Asked once the node has answered the stream, and only once: a node
        # that fails is the stream's to retry and report, not this note's.
        while not _answered(client):  # noqa: ASYNC110 (ever_answered is a plain flag, set deep in the client)
            await asyncio.sleep(0.05)
        with contextlib.suppress(Exception):
            served = int(await client.call("eth_chainId"), 16)
    configured = ChainConfig.get_current_chain()
    if served is None or served == int(configured):
        return
    name = configured.name.removeprefix("OGPU_").lower()
    nexus = ChainConfig.get_contract_address("NEXUS")
    err.write(
        f"{PROG}: note: the node at {client.masked_url} serves chain {served}, "
        f"not {name} ({int(configured)}); following the {name} Nexus address {nexus} on it. "
        "Another chain: --chain or OGPU_CHAIN\n"
    )
    err.flush()


class _End:
    """Queued after the last event, with the error that ended the stream, if any."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error


async def _pump(events: AsyncGenerator[Any, None], queue: asyncio.Queue[Any]) -> None:
    # The generator is iterated and closed in this one task: closing it from
    # another while it waits would fail ("already running").
    async with contextlib.aclosing(events):
        try:
            async for event in events:
                await queue.put(event)
        except Exception as exc:  # reported by the printing side, in order after the events
            await queue.put(_End(exc))
            return
    await queue.put(_End())


def _output_closed(out: TextIO) -> bool:
    """Whether nobody reads ``out`` any more (``| head`` has exited), without writing to it.

    What GNU ``tail -f`` does: poll the descriptor for an error. A pipe
    whose reader is gone reports POLLERR; a terminal hung up, POLLHUP.
    Files, and systems without ``poll``, never report closed.
    """
    if not hasattr(select, "poll"):
        return False
    try:
        fd = out.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    poller = select.poll()
    poller.register(fd, 0)  # no event asked for: errors and hang-ups are reported anyway
    return any(revents & (select.POLLERR | select.POLLHUP) for _, revents in poller.poll(0))


async def _next_batch(
    queue: asyncio.Queue[Any],
    timeout: float | None,
    answered: Callable[[], bool],
    out: TextIO | None = None,
    check_every: float = 1.0,
) -> list[Any] | None:
    """Whatever is queued once something is; None when --timeout passes in silence.

    The quiet spell counts only from the node's first answer: a node that
    has not answered is still being connected to, and the stream reports
    its failure (exit 1) within the startup limits. Every ``check_every``
    seconds of waiting, ``out`` is checked: a reader gone raises
    ``BrokenPipeError`` now, not at the next event, which may be hours away.
    """
    loop = asyncio.get_running_loop()
    quiet_since = loop.time() if answered() else None
    while True:
        if timeout is None:
            wait = None
        elif quiet_since is None:
            wait = 0.1
        else:
            wait = quiet_since + timeout - loop.time()
            if wait <= 0:
                return None
        if out is not None:
            wait = check_every if wait is None else min(wait, check_every)
        try:
            first = await asyncio.wait_for(queue.get(), wait)
            break
        except asyncio.TimeoutError:
            if quiet_since is None and answered():
                quiet_since = loop.time()
            if out is not None and _output_closed(out):
                raise BrokenPipeError(errno.EPIPE, "the reader of the output has gone") from None
    batch = [first]
    while not queue.empty() and not isinstance(batch[-1], _End):
        batch.append(queue.get_nowait())
    return batch


async def stream_events(
    args: argparse.Namespace,
    out: TextIO,
    err: TextIO,
    progress: CatchUpProgress | None = None,
    *,
    terminal: bool | None = None,
) -> int:
    """Print the events ``args`` asks for until --count, --timeout or cancellation.

    ``terminal`` says whether a person is watching (a header line above
    human output, a notice when the node keeps them waiting); by default,
    whether ``out`` and ``err`` are terminals.
    """
    specs, field, scope, label = _target(args)
    _configure_chain(args)
    checkpoint = _checkpoint_for(args, specs, field, scope)
    # After the input is checked: bad input never loads httpx. Every URL given,
    # as the stream has them: a --rpc A --rpc B command goes on when A dies.
    from ogpu.events._net.endpoints import open_client

    client = open_client(ChainConfig.get_rpcs(), announce=False)
    notice: asyncio.Task[None] | None = None
    chain_notice: asyncio.Task[None] | None = None
    pump: asyncio.Task[None] | None = None
    if terminal if terminal is not None else err.isatty():
        notice = asyncio.create_task(_waiting_notice(client, err, WAITING_NOTICE_AFTER))
    state: tuple[StateFile, FollowedEvents] | None = None
    try:
        after: EventPosition | None = None
        if args.state is not None and checkpoint is None:
            state_file, followed, after = await _resume_from_state(args, client, specs, field, scope)
            state = (state_file, followed)
        served = state[1].chain_id if state is not None else None
        chain_notice = asyncio.create_task(_chain_notice(client, err, served), name="ogpu-events chain")
        # A saved position says where to go on; --from-block only starts a new FILE.
        from_block = args.from_block if after is None else None
        if from_block is not None:
            head = await _head(client)
            if from_block < 0:
                from_block = max(0, head + from_block)
            elif from_block > head:
                err.write(f"{PROG}: block {from_block} is ahead of the head ({head}); waiting for it\n")
                err.flush()
        progress = progress if progress is not None else CatchUpProgress(err)
        events: AsyncGenerator[Any, None] = open_stream(
            specs,
            field,
            scope,
            from_block,
            args.poll_interval,
            args.confirmations,
            label=label,
            progress=progress,
            after=after,
            checkpoint=checkpoint,
            auto_commit=False,  # committed once printed, in _print_events
        )
        queue: asyncio.Queue[Any] = asyncio.Queue(_QUEUE_SIZE)
        pump = asyncio.create_task(_pump(events, queue), name="ogpu-events pump")
        show_header = not args.json and (terminal if terminal is not None else out.isatty())
        # On a terminal a line fits its width (read per batch: windows get resized).
        return await _print_events(
            args,
            queue,
            client,
            out,
            err,
            progress,
            show_header,
            state,
            fit=show_header,
            checkpoint=checkpoint,
        )
    finally:
        # Runs on every exit, cancellation (Ctrl-C) included: the stream is
        # left and its filter uninstalled before the event loop closes.
        for task in (notice, chain_notice, pump):
            if task is not None and not task.done():
                task.cancel()
                # Not ``await task``: a caller cancelled meanwhile must not cut the teardown short.
                await asyncio.wait([task])
        if state is not None:
            state[0].release()  # after the stream is left: the last position saved is final
        await client.aclose()


async def _print_events(
    args: argparse.Namespace,
    queue: asyncio.Queue[Any],
    client: JsonRpc,
    out: TextIO,
    err: TextIO,
    progress: CatchUpProgress,
    show_header: bool,
    state: tuple[StateFile, FollowedEvents] | None = None,
    fit: bool = False,
    checkpoint: Checkpoint | None = None,
) -> int:
    from ogpu.events._cli.blocktimes import BlockTimes

    times = BlockTimes(client)
    shown = 0
    while args.count is None or shown < args.count:
        batch = await _next_batch(
            queue, args.timeout, lambda: _answered(client), out, min(args.poll_interval, 1.0)
        )
        if batch is None:
            failure = failing_now()
            if failure is not None:
                # The node answered once, but is failing now: that is why nothing came.
                raise failure
            progress.clear()
            err.write(f"{PROG}: no event within {args.timeout:g}s\n")
            return EXIT_TIMEOUT
        end = batch.pop() if isinstance(batch[-1], _End) else None
        if args.count is not None:
            del batch[args.count - shown :]
        stamps = await times.lookup(event.block_hash for event in batch) if batch else {}
        progress.clear()
        width = shutil.get_terminal_size((0, 0)).columns if fit else 0
        for event in batch:
            stamp = stamps.get(event.block_hash.lower())
            if show_header:
                out.write(human_header() + "\n")
                show_header = False
            line = json_line(event, stamp) if args.json else fit_width(human_line(event, stamp), width)
            out.write(line + "\n")
            if state is not None:
                # Out first, then saved, with no await between: a signal (a
                # cancellation) cannot come in between, and a kill -9 there
                # at worst prints this one event again on the next run.
                out.flush()
                state[0].save(state[1], event.position)
            if checkpoint is not None:
                out.flush()
                await _commit_printed(checkpoint, event.position)
        out.flush()  # a pipe into jq or a log shipper sees each event as it happens
        shown += len(batch)
        if end is not None:
            if end.error is not None:
                raise end.error
            return EXIT_OK
    return EXIT_OK


def _checkpoint_for(
    args: argparse.Namespace, specs: tuple[EventSpec, ...], field: str | None, scope: str | None
) -> Checkpoint | None:
    """``--state URL`` as a checkpoint, named after the stream (replicas of one command share it)."""
    from ogpu.events._checkpoint.store import is_checkpoint_url

    if args.state is None or not is_checkpoint_url(args.state):
        if args.lease is not None:
            raise _Failure("--lease needs --state sqlite:///PATH or postgresql://...", EXIT_USAGE)
        return None
    from ogpu.events._checkpoint.store import Checkpoint

    name = "ogpu-events:" + ",".join(sorted(spec.name for spec in specs))
    if field is not None:
        name += f":{field}=0x{scope}"
    return Checkpoint(args.state, name, lease=args.lease)


async def _commit_printed(checkpoint: Checkpoint, position: EventPosition) -> None:
    # Ctrl-C must not cut a commit short: the line is out, so its position goes in.
    commit = asyncio.ensure_future(checkpoint.commit(position))
    try:
        await asyncio.shield(commit)
    except asyncio.CancelledError:
        await asyncio.wait([commit])
        raise


# --- logging, errors, signals ---


class _LogGate(logging.Filter):
    """Lets every WARNING through, whenever it is logged, except startup retries.

    A retry of a node that has never answered is the startup deadline at
    work, and its end is reported as the one error line (``-v`` shows each
    try). Errors are always reported by the command itself, so the
    library's own ERROR records would repeat it.
    """

    def __init__(self, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose
        self.progress: CatchUpProgress | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return False
        if not self.verbose and getattr(record, STARTUP_RETRY, False):
            return False
        if self.progress is not None:
            self.progress.clear()
        return True


def _setup_logging(verbose: bool) -> _LogGate:
    gate = _LogGate(verbose)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG}: %(levelname)s: %(message)s"))
    handler.addFilter(gate)
    logger = logging.getLogger("ogpu.events")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    # The command shows the log its own way (-v, the gate): the handler that
    # OGPU_VERBOSE=1 added at import would print every line again, ungated.
    set_verbose(False)
    return gate


def _error_report(exc: BaseException) -> tuple[str, int]:
    """One line saying what failed, and the exit code for it."""
    if isinstance(exc, _Failure):
        return str(exc), exc.code
    if isinstance(exc, RpcError):
        try:
            url = mask_url(ChainConfig.get_rpc())
        except OGPUError:
            url = exc.url
        what = exc.method or "a call"
        if isinstance(exc, RpcResponseError):
            return f"the node at {url} refused {what}: JSON-RPC error {exc.code}: {exc.args[0]}", EXIT_FAILED
        return f"{what} to {url} failed: {exc.args[0]}", EXIT_FAILED
    if isinstance(exc, InvalidArgumentError | ConfigError | CheckpointMismatchError | CheckpointVersionError):
        # A checkpoint written for another stream is refused as a --state FILE is: bad input.
        return str(exc), EXIT_USAGE
    if isinstance(exc, OGPUError):
        return str(exc), EXIT_FAILED
    return f"unexpected {type(exc).__name__}: {exc}", EXIT_FAILED


def _scrub(message: str) -> str:
    """Mask the configured URLs wherever a lower layer quoted one verbatim."""
    try:
        urls = ChainConfig.get_rpcs()
    except OGPUError:
        return message
    for url in urls:
        message = message.replace(url, mask_url(url))
    return message


async def _run(args: argparse.Namespace, gate: _LogGate) -> int:
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    assert main_task is not None
    interrupted: int | None = None  # the exit code of the signal that stops the command

    def on_signal(code: int) -> None:
        nonlocal interrupted
        if interrupted is not None:  # a second signal while cleaning up: stop now
            sys.stdout.flush()
            os._exit(code)
        interrupted = code
        main_task.cancel()

    with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread, or no signals
        loop.add_signal_handler(signal.SIGINT, on_signal, EXIT_INTERRUPTED)
        # SIGTERM (a service manager, docker stop) stops as cleanly as Ctrl-C.
        loop.add_signal_handler(signal.SIGTERM, on_signal, EXIT_TERMINATED)
    try:
        if args.command == "demo":
            from ogpu.events._cli.demo import run_demo  # starts processes: imported only when asked
            from ogpu.events._devnode.nodes import ANVIL_VERSION, AnvilNotFoundError

            try:
                return await run_demo(sys.stdout)
            except AnvilNotFoundError:
                # Said for someone who installed the package with pip, who has
                # no Makefile: how to get anvil itself.
                raise _Failure(
                    "the demo runs a local anvil node (Foundry's), and none was found: install it "
                    f"with npm (`npm install -g @foundry-rs/anvil@{ANVIL_VERSION}`) or with Foundry "
                    "(https://getfoundry.sh: `foundryup`), or set OGPU_ANVIL to an anvil binary; "
                    "in a clone of the repository, `make demo` installs it",
                    EXIT_FAILED,
                ) from None
        progress = CatchUpProgress(sys.stderr)
        gate.progress = progress
        return await stream_events(args, sys.stdout, sys.stderr, progress)
    except asyncio.CancelledError:
        if interrupted is not None:
            return interrupted
        raise
    finally:
        if gate.progress is not None:
            # However the command ends (a signal, an error line to come), the
            # status line must not stay on screen under the prompt or the error.
            gate.progress.clear()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGINT)
            loop.remove_signal_handler(signal.SIGTERM)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    verbose = bool(args.verbose_top or getattr(args, "verbose", False))
    if args.version:
        print("\n".join(version_lines(PROG, with_dependencies=verbose)))
        return EXIT_OK
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    gate = _setup_logging(verbose)
    try:
        with startup_deadline(_startup_deadline()):
            return asyncio.run(_run(args, gate))
    except KeyboardInterrupt:  # Ctrl-C before the loop could take it over
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`| head`): nothing more to say, and saying it
        # at exit would fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:
        message, code = _error_report(exc)
        print(f"{PROG}: error: {_scrub(message)}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
