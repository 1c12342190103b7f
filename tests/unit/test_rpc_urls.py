"""Several RPC URLs for one chain: ``set_rpc`` with a list, ``get_rpcs``, ``OGPU_RPC_URL`` comma separated.

``get_rpc`` keeps answering one URL, the first, so code written for the
``ogpu`` package 0.2 sees the preferred endpoint.
"""

from __future__ import annotations

import pytest

from ogpu.chain import ChainConfig, ChainId
from ogpu.types import InvalidRpcUrlError

A = "https://a.example/rpc"
B = "https://b.example/rpc"
C = "http://127.0.0.1:8545"
MAINNET_RPC = "https://mainnet-rpc.ogpuscan.io"


@pytest.mark.parametrize("urls", [[A, B, C], (A, B, C)], ids=["list", "tuple"])
def test_a_list_or_tuple_sets_every_url_in_order(urls: list[str] | tuple[str, ...]) -> None:
    ChainConfig.set_rpc(urls)

    assert ChainConfig.get_rpcs() == (A, B, C)
    assert ChainConfig.get_rpc() == A


def test_one_string_is_one_url() -> None:
    ChainConfig.set_rpc(B)

    assert ChainConfig.get_rpcs() == (B,)
    assert ChainConfig.get_rpc() == B


def test_default_is_the_chains_public_url() -> None:
    assert ChainConfig.get_rpcs() == (MAINNET_RPC,)


def test_urls_for_another_chain_stay_with_it() -> None:
    ChainConfig.set_rpc([A, B], chain="testnet")

    assert ChainConfig.get_rpcs() == (MAINNET_RPC,)
    assert ChainConfig.get_rpcs(ChainId.OGPU_TESTNET) == (A, B)
    ChainConfig.reset_rpc("testnet")
    assert ChainConfig.get_rpcs("testnet") == ("https://testnetrpc.ogpuscan.io",)


def test_environment_takes_urls_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OGPU_RPC_URL", f" {A} ,{B},  {C}\n")

    assert ChainConfig.get_rpcs() == (A, B, C)
    assert ChainConfig.get_rpc() == A


def test_code_beats_the_environments_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OGPU_RPC_URL", f"{A},{B}")
    ChainConfig.set_rpc(C)

    assert ChainConfig.get_rpcs() == (C,)


@pytest.mark.parametrize("empty", [[], ()], ids=["list", "tuple"])
def test_an_empty_list_is_refused(empty: list[str] | tuple[str, ...]) -> None:
    with pytest.raises(InvalidRpcUrlError, match="empty"):
        ChainConfig.set_rpc(empty)
    assert ChainConfig.get_rpcs() == (MAINNET_RPC,)


@pytest.mark.parametrize(
    "twin",
    [A, "HTTPS://A.EXAMPLE/rpc", "https://a.example:443/rpc", "https://a.example/rpc/"],
    ids=["same", "letter-case", "default-port", "final-slash"],
)
def test_a_url_listed_twice_is_refused_naming_both_entries(twin: str) -> None:
    with pytest.raises(InvalidRpcUrlError) as caught:
        ChainConfig.set_rpc([A, B, twin])

    assert "RPC URL 3 of 3" in str(caught.value) and "repeats URL 1" in str(caught.value)
    assert ChainConfig.get_rpcs() == (MAINNET_RPC,)


def test_the_same_host_on_another_path_or_port_is_another_endpoint() -> None:
    ChainConfig.set_rpc([A, "https://a.example/other", "https://a.example:8443/rpc"])

    assert len(ChainConfig.get_rpcs()) == 3


def test_a_duplicate_is_named_masked() -> None:
    secret = "https://user:hunter2@b.example/v3/0123456789abcdef0123"
    with pytest.raises(InvalidRpcUrlError) as caught:
        ChainConfig.set_rpc([secret, A, secret])

    assert "hunter2" not in str(caught.value) and "0123456789abcdef0123" not in str(caught.value)
    assert "b.example" in str(caught.value)
    assert caught.value.url is not None and "hunter2" not in caught.value.url


@pytest.mark.parametrize("bad", ["ftp://user:hunter2@c.example", "c.example:8545", "", "http://exa mple"])
def test_a_malformed_entry_is_refused_by_its_place_and_masked(bad: str) -> None:
    with pytest.raises(InvalidRpcUrlError) as caught:
        ChainConfig.set_rpc([A, bad])

    assert str(caught.value).startswith("RPC URL 2 of 2: ")
    assert "hunter2" not in str(caught.value)
    assert ChainConfig.get_rpcs() == (MAINNET_RPC,)


@pytest.mark.parametrize("bad", [None, 8545, {A}, [A, None]], ids=["none", "int", "set", "none-entry"])
def test_what_is_neither_a_url_nor_a_list_of_urls_is_refused(bad: object) -> None:
    with pytest.raises(InvalidRpcUrlError, match="string"):
        ChainConfig.set_rpc(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "entry"),
    [
        (f"{A},ftp://c.example", "RPC URL 2 of 2"),
        (f"{A},,{B}", "RPC URL 2 of 3"),
        (f"{A},{A}", "repeats URL 1"),
    ],
    ids=["malformed", "empty-entry", "duplicate"],
)
def test_a_bad_entry_in_the_environment_is_refused_by_its_place(
    monkeypatch: pytest.MonkeyPatch, value: str, entry: str
) -> None:
    monkeypatch.setenv("OGPU_RPC_URL", value)

    with pytest.raises(InvalidRpcUrlError, match=entry):
        ChainConfig.get_rpcs()
    with pytest.raises(InvalidRpcUrlError, match=entry):
        ChainConfig.get_rpc()
