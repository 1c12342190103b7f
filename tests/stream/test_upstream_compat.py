"""Code written against the ``ogpu`` package 0.2 (0.2.1-0.2.3) runs unchanged.

One test per way its users reach the library, each written as such a user's
code reads: the import paths, the watchers' keyword names, events built by
hand in their own tests, the environment helpers, the errors' keywords,
``except ValueError`` around a contract lookup, and ``set_verbose``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import sys
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import pytest

import ogpu
import ogpu.events
import ogpu.types
from ogpu.events._codec.abi import EVENTS
from ogpu.events._codec.address import checksum_address
from tests.support.fakenode import FakeNode, mounted, raw_log
from tests.support.streams import FAST, Watcher

SCOPE = "0x" + "5c" * 20
OTHER = "0x" + "07" * 20
TX = "0x" + "ab" * 32


@pytest.fixture
def node() -> Iterator[FakeNode]:
    fake = FakeNode()
    ogpu.ChainConfig.set_rpc(fake.url)
    with mounted(fake):
        yield fake


# --- import paths: ogpu.events.types and ogpu.events.watchers ---


def test_the_events_types_and_watchers_modules_import() -> None:
    from ogpu.events.types import (
        AttemptedEvent,
        RegisteredEvent,
        ResponseStatusChangedEvent,
        ResponseSubmittedEvent,
        TaskPublishedEvent,
        TaskStatusChangedEvent,
    )
    from ogpu.events.watchers import (
        watch_attempted,
        watch_registered,
        watch_response_status_changed,
        watch_response_submitted,
        watch_task_published,
        watch_task_status_changed,
    )

    # The same objects as under ogpu.events, not copies.
    for thing in (
        AttemptedEvent,
        RegisteredEvent,
        ResponseStatusChangedEvent,
        ResponseSubmittedEvent,
        TaskPublishedEvent,
        TaskStatusChangedEvent,
        watch_attempted,
        watch_registered,
        watch_response_status_changed,
        watch_response_submitted,
        watch_task_published,
        watch_task_status_changed,
    ):
        assert getattr(ogpu.events, thing.__name__) is thing


# --- import paths: ogpu.types.enums and ogpu.types.errors ---


def test_the_types_enums_and_errors_modules_import() -> None:
    from ogpu.types import OGPUError as OGPUErrorFromTypes
    from ogpu.types import TaskStatus as TaskStatusFromTypes
    from ogpu.types.enums import (
        DeliveryMethod,
        Environment,
        ResponseStatus,
        Role,
        SourceStatus,
        TaskStatus,
        combine_environments,
        environment_names,
        parse_environments,
    )
    from ogpu.types.errors import ChainNotSupportedError, ConfigError, InvalidRpcUrlError, OGPUError

    assert TaskStatus is TaskStatusFromTypes and OGPUError is OGPUErrorFromTypes
    for thing in (
        DeliveryMethod,
        Environment,
        ResponseStatus,
        Role,
        SourceStatus,
        combine_environments,
        environment_names,
        parse_environments,
        ChainNotSupportedError,
        ConfigError,
        InvalidRpcUrlError,
    ):
        assert getattr(ogpu.types, thing.__name__) is thing
    assert (TaskStatus(5), ResponseStatus(1), SourceStatus(1)) == (
        TaskStatus.FINALIZED,
        ResponseStatus.CONFIRMED,
        SourceStatus.INACTIVE,
    )
    assert DeliveryMethod(1) is DeliveryMethod.FIRST_RESPONSE and DeliveryMethod.FIRST_RESPONSE.value == 1
    assert issubclass(ChainNotSupportedError, ConfigError) and issubclass(ConfigError, OGPUError)


# --- import paths: ogpu.chain.config ---


def test_the_chain_config_module_imports() -> None:
    from ogpu.chain.config import CHAIN_RPC_URLS, ChainConfig, ChainId

    assert ChainConfig is ogpu.ChainConfig and ChainId is ogpu.ChainId
    ChainConfig.set_chain(chain_id=ChainId.OGPU_TESTNET)  # 0.2's keyword names
    assert ChainConfig.get_contract_address(contract_name="NEXUS") == (
        "0xF87bb2f3edB991a998992f14d35fE142e6Bb50b1"
    )
    assert CHAIN_RPC_URLS[ChainId.OGPU_TESTNET] == "https://testnetrpc.ogpuscan.io"
    # As in 0.2, the table follows set_rpc and reset_rpc.
    ChainConfig.set_rpc("http://127.0.0.1:8545")
    assert CHAIN_RPC_URLS[ChainId.OGPU_TESTNET] == "http://127.0.0.1:8545"
    assert CHAIN_RPC_URLS[ChainId.OGPU_MAINNET] == "https://mainnet-rpc.ogpuscan.io"
    ChainConfig.reset_rpc()
    assert dict(CHAIN_RPC_URLS) == {
        ChainId.OGPU_MAINNET: "https://mainnet-rpc.ogpuscan.io",
        ChainId.OGPU_TESTNET: "https://testnetrpc.ogpuscan.io",
    }
    with pytest.raises(TypeError):
        CHAIN_RPC_URLS[ChainId.OGPU_MAINNET] = "http://x"  # type: ignore[index]


# --- the watchers' keyword names: task_address=, source_address=, response_address= ---


async def first(events: AsyncGenerator[Any, None]) -> Any:
    async with contextlib.aclosing(events):
        async for event in events:
            return event
    raise AssertionError("the watcher ended without an event")


# watcher, its 0.2 keyword, and a log it yields (SCOPE where the scope goes)
UPSTREAM_WATCHERS: list[tuple[Watcher, str, str, tuple[Any, ...]]] = [
    (ogpu.events.watch_task_published, "source_address", "TaskPublished", (OTHER, SCOPE)),
    (ogpu.events.watch_attempted, "task_address", "Attempted", (SCOPE, OTHER, 5)),
    (ogpu.events.watch_response_submitted, "task_address", "ResponseSubmitted", (OTHER, SCOPE)),
    (ogpu.events.watch_response_status_changed, "response_address", "ResponseStatusChanged", (SCOPE, 1)),
    (ogpu.events.watch_task_status_changed, "task_address", "TaskStatusChanged", (SCOPE, 5)),
    (ogpu.events.watch_registered, "source_address", "Registered", (OTHER, 3, SCOPE, 1)),
]


@pytest.mark.anyio
async def test_watch_attempted_takes_task_address(node: FakeNode) -> None:
    from ogpu.events.watchers import watch_attempted

    node.add_log("Attempted", SCOPE, OTHER, 25 * 10**17)
    node.mine()

    async def monitor(task_address: str) -> list[tuple[str, int]]:
        seen = []
        async for event in watch_attempted(task_address=task_address, from_block=0, poll_interval=FAST):
            seen.append((event.provider, event.suggested_payment))
            break
        return seen

    assert await asyncio.wait_for(monitor(SCOPE), 10) == [(checksum_address(OTHER[2:]), 25 * 10**17)]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("watcher", "keyword", "event", "values"),
    UPSTREAM_WATCHERS,
    ids=[w[0].__name__ for w in UPSTREAM_WATCHERS],
)
async def test_every_watcher_takes_its_0_2_keyword_and_ours(
    node: FakeNode, watcher: Watcher, keyword: str, event: str, values: tuple[Any, ...]
) -> None:
    node.add_log(event, *values)
    node.add_log(event, *(OTHER if v == SCOPE else v for v in values))  # another scope: not yielded
    node.mine()
    ours = keyword.removesuffix("_address")

    as_in_0_2 = await asyncio.wait_for(
        first(watcher(**{keyword: SCOPE}, from_block=0, poll_interval=FAST)), 10
    )
    by_position = await asyncio.wait_for(first(watcher(SCOPE, from_block=0, poll_interval=FAST)), 10)
    by_our_name = await asyncio.wait_for(
        first(watcher(**{ours: SCOPE}, from_block=0, poll_interval=FAST)), 10
    )

    assert as_in_0_2 == by_position == by_our_name
    assert getattr(as_in_0_2, ours) == checksum_address(SCOPE[2:])


@pytest.mark.parametrize(
    ("watcher", "keyword"), [w[:2] for w in UPSTREAM_WATCHERS], ids=[w[0].__name__ for w in UPSTREAM_WATCHERS]
)
def test_the_address_given_twice_or_not_at_all_fails_at_the_call(
    node: FakeNode, watcher: Watcher, keyword: str
) -> None:
    with pytest.raises(ogpu.types.InvalidArgumentError, match="twice"):
        watcher(SCOPE, **{keyword: SCOPE})
    with pytest.raises(ogpu.types.InvalidArgumentError, match=keyword):
        watcher()
    with pytest.raises(TypeError):  # a keyword of another watcher
        watcher(**{"source_address" if keyword != "source_address" else "task_address": SCOPE})
    assert node.requests == []


# --- events built by hand, in 0.2's field order ---

# Each event's fields in the ogpu package 0.2, in its order.
UPSTREAM_FIELDS: dict[str, tuple[str, ...]] = {
    "TaskPublishedEvent": ("task", "source"),
    "AttemptedEvent": ("task", "provider", "suggested_payment"),
    "ResponseSubmittedEvent": ("response", "task"),
    "ResponseStatusChangedEvent": ("response", "status"),
    "TaskStatusChangedEvent": ("task", "status"),
    "RegisteredEvent": ("provider", "registrant_id", "source"),
}


def test_an_attempted_event_builds_as_0_2_users_build_it() -> None:
    from ogpu.events.types import AttemptedEvent

    by_keyword = AttemptedEvent(
        task=SCOPE,
        provider=OTHER,
        suggested_payment=10**18,
        block_number=7,
        transaction_hash=TX,
        log_index=0,
    )
    by_position = AttemptedEvent(SCOPE, OTHER, 10**18, 7, TX, 0)

    assert by_keyword == by_position
    assert (by_keyword.block_number, by_keyword.transaction_hash, by_keyword.log_index) == (7, TX, 0)
    assert by_keyword.block_hash == ""


@pytest.mark.parametrize("name", sorted(UPSTREAM_FIELDS))
def test_every_event_builds_by_position_in_0_2_order(name: str) -> None:
    from ogpu.events import types

    cls = getattr(types, name)
    payload = {"status": 1, "registrant_id": 3, "suggested_payment": 5}
    values = [payload.get(field, SCOPE) for field in UPSTREAM_FIELDS[name]]

    event = cls(*values, 7, TX, 2)

    assert [getattr(event, f) for f in UPSTREAM_FIELDS[name]] == values
    assert (event.block_number, event.transaction_hash, event.log_index, event.block_hash) == (7, TX, 2, "")


def test_a_registered_event_keeps_its_environment_after_0_2s_fields() -> None:
    from ogpu.events.types import RegisteredEvent
    from ogpu.types.enums import Environment

    built = RegisteredEvent(OTHER, 3, SCOPE, 7, TX, 0)
    assert built.preferred_environment == Environment(0)

    # Decoding a log gives the same event as building it with what 0.2 lacked.
    log = raw_log("Registered", OTHER, 3, SCOPE, 6, block=7, tx_hash=TX)
    decoded = EVENTS["Registered"].decode(log)
    assert decoded == RegisteredEvent(
        checksum_address(OTHER[2:]),
        3,
        checksum_address(SCOPE[2:]),
        7,
        TX,
        0,
        block_hash=log["blockHash"],
        preferred_environment=Environment.NVIDIA | Environment.AMD,
    )


# --- Role and the Environment mask helpers ---


def test_role_and_the_environment_helpers_behave_as_in_0_2() -> None:
    from ogpu.types.enums import (
        Environment,
        Role,
        combine_environments,
        environment_names,
        parse_environments,
    )

    assert [r.value for r in Role] == ["client", "provider", "master"]
    assert Role("provider") is Role.PROVIDER

    mask = combine_environments(Environment.CPU, Environment.AMD)
    assert mask == 5 and type(mask) is int
    assert combine_environments() == 0
    assert parse_environments(mask) == [Environment.CPU, Environment.AMD]
    assert environment_names(mask) == ["CPU", "AMD"]
    for every in range(8):  # each mask round-trips
        assert combine_environments(*parse_environments(every)) == every
    assert parse_environments(8) == [] and environment_names(0) == []  # bits no environment has: ignored

    # What 0.2 failed on with an AttributeError or TypeError is a typed error here.
    for bad_call in (
        lambda: combine_environments(1),  # type: ignore[arg-type]
        lambda: parse_environments("5"),  # type: ignore[arg-type]
        lambda: environment_names(-1),
    ):
        with pytest.raises(ogpu.types.InvalidArgumentError):
            bad_call()


# --- errors built with 0.2's keywords ---


def test_config_errors_take_0_2s_keywords_and_name_the_value() -> None:
    from ogpu.types.errors import ChainNotSupportedError, InvalidRpcUrlError

    chain_error = ChainNotSupportedError(chain_id=999)
    assert chain_error.chain_id == 999 and "999" in str(chain_error)
    url_error = InvalidRpcUrlError(url="ftp://node.example")
    assert url_error.url == "ftp://node.example" and "ftp://node.example" in str(url_error)
    # A URL in an error is shown as everywhere else: without its key.
    assert "MYAPIKEY123" not in str(InvalidRpcUrlError(url="https://node.example/v3/MYAPIKEY123"))

    # A message alone still works, and the library's own raises carry the value.
    assert str(ChainNotSupportedError("no such chain")) == "no such chain"
    with pytest.raises(ChainNotSupportedError) as raised_chain:
        ogpu.ChainConfig.set_chain(999)
    assert raised_chain.value.chain_id == 999
    with pytest.raises(InvalidRpcUrlError) as raised_url:
        ogpu.ChainConfig.set_rpc("ftp://node.example")
    assert raised_url.value.url == "ftp://node.example"


# --- except ValueError around get_contract_address ---


def test_an_unknown_contract_is_caught_by_except_value_error() -> None:
    from ogpu.chain.config import ChainConfig

    try:
        ChainConfig.get_contract_address("BOGUS")
    except ValueError as exc:
        caught: Exception = exc
    assert "BOGUS" in str(caught)
    with pytest.raises(KeyError):  # what this library raised before, still caught so
        ChainConfig.get_contract_address("BOGUS")


# --- set_verbose and OGPU_VERBOSE ---


def test_set_verbose_shows_the_info_log_on_stderr_once_and_undoes_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    log = logging.getLogger("ogpu.events")
    level_before = logging.getLogger("ogpu").level
    try:
        ogpu.set_verbose(True)
        ogpu.set_verbose(True)  # twice: still one handler
        log.info("refilling blocks 5..9")
    finally:
        ogpu.set_verbose(False)
    log.info("after set_verbose(False)")

    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert "INFO" in lines[0] and "ogpu.events" in lines[0] and "refilling blocks 5..9" in lines[0]
    assert logging.getLogger("ogpu").level == level_before
    with pytest.raises(ogpu.types.InvalidArgumentError):
        ogpu.set_verbose("no")  # type: ignore[arg-type]


@pytest.mark.nodes
@pytest.mark.parametrize(("value", "shown"), [("1", True), ("true", True), ("0", False), ("", False)])
def test_ogpu_verbose_in_the_environment_turns_it_on_at_import(value: str, shown: bool) -> None:
    code = "import logging, ogpu\nlogging.getLogger('ogpu.events').info('a recovery')\n"
    env = {"OGPU_VERBOSE": value, "PATH": ""}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("a recovery") == (1 if shown else 0)


@pytest.mark.nodes
def test_the_command_prints_its_log_once_when_ogpu_verbose_is_set() -> None:
    from tests.support.cli import closed_port, run_cli

    url = f"http://127.0.0.1:{closed_port()}/"
    result = run_cli("watch", "attempted", SCOPE, "--rpc", url, variables={"OGPU_VERBOSE": "1"})

    assert result.code == 1
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr  # its error line, nothing else
