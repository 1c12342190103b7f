"""ChainConfig: the existing ``ogpu`` API, the values from the chain facts, and the environment."""

from __future__ import annotations

import pytest

from ogpu import ChainConfig, ChainId
from ogpu.chain import mask_url, validate_rpc_url
from ogpu.types import ChainNotSupportedError, ConfigError, InvalidRpcUrlError

MAINNET_RPC = "https://mainnet-rpc.ogpuscan.io"
TESTNET_RPC = "https://testnetrpc.ogpuscan.io"

CONTRACTS = {
    ChainId.OGPU_MAINNET: {
        "NEXUS": "0x2b0cC6058313801D5feb184a539e3a0C5A87a6a1",
        "CONTROLLER": "0x8661F4B9c30e07A04d795A192478dfD905625a1D",
        "TERMINAL": "0xaEBC7b712D38Fc4d841f0732c21B8774339869D3",
        "VAULT": "0xa5c582254AA313528898311362bc698b041580cC",
    },
    ChainId.OGPU_TESTNET: {
        "NEXUS": "0xF87bb2f3edB991a998992f14d35fE142e6Bb50b1",
        "CONTROLLER": "0x9fb6022074Fd7Bdb429de0776eb693cA0CB55E09",
        "TERMINAL": "0x1ea332Fc14a5AFD3AF3852B45C263Ab5b1Dd6f52",
        "VAULT": "0x15905a2FbD3EF5d3532b931b5656BB9EB493Bb15",
    },
}


def test_chain_ids() -> None:
    assert int(ChainId.OGPU_MAINNET) == 1071
    assert int(ChainId.OGPU_TESTNET) == 200820172034
    assert ChainConfig.get_all_supported_chains() == [ChainId.OGPU_MAINNET, ChainId.OGPU_TESTNET]


def test_mainnet_is_the_default() -> None:
    assert ChainConfig.get_current_chain() is ChainId.OGPU_MAINNET
    assert ChainConfig.get_rpc() == MAINNET_RPC
    assert ChainConfig.get_contract_address("NEXUS") == CONTRACTS[ChainId.OGPU_MAINNET]["NEXUS"]


@pytest.mark.parametrize(
    "chain", [ChainId.OGPU_TESTNET, 200820172034, "testnet", "OGPU_TESTNET", "200820172034"]
)
def test_set_chain_accepts_ids_and_names(chain: ChainId | int | str) -> None:
    ChainConfig.set_chain(chain)
    assert ChainConfig.get_current_chain() is ChainId.OGPU_TESTNET
    assert ChainConfig.get_rpc() == TESTNET_RPC
    assert ChainConfig.get_contract_address("NEXUS") == CONTRACTS[ChainId.OGPU_TESTNET]["NEXUS"]


@pytest.mark.parametrize("chain", [ChainId.OGPU_MAINNET, ChainId.OGPU_TESTNET])
@pytest.mark.parametrize("name", ["NEXUS", "CONTROLLER", "TERMINAL", "VAULT"])
def test_contract_addresses(chain: ChainId, name: str) -> None:
    assert ChainConfig.get_contract_address(name, chain) == CONTRACTS[chain][name]
    assert ChainConfig.get_contract_address(name.lower(), chain) == CONTRACTS[chain][name]


def test_unknown_contract_name_says_what_is_known() -> None:
    with pytest.raises(KeyError, match="NEXUS"):
        ChainConfig.get_contract_address("ROUTER")


def test_set_rpc_for_the_current_chain_and_reset() -> None:
    ChainConfig.set_rpc("http://127.0.0.1:8545")
    assert ChainConfig.get_rpc() == "http://127.0.0.1:8545"
    assert ChainConfig.get_rpc(ChainId.OGPU_TESTNET) == TESTNET_RPC
    ChainConfig.reset_rpc()
    assert ChainConfig.get_rpc() == MAINNET_RPC


def test_set_rpc_for_another_chain_follows_a_later_switch() -> None:
    ChainConfig.set_rpc("http://127.0.0.1:9000/rpc", chain="testnet")
    assert ChainConfig.get_rpc() == MAINNET_RPC
    ChainConfig.set_chain(ChainId.OGPU_TESTNET)
    assert ChainConfig.get_rpc() == "http://127.0.0.1:9000/rpc"
    ChainConfig.reset_rpc(ChainId.OGPU_TESTNET)
    assert ChainConfig.get_rpc() == TESTNET_RPC


def test_reset_rpc_without_an_override_is_harmless() -> None:
    ChainConfig.reset_rpc()
    assert ChainConfig.get_rpc() == MAINNET_RPC


def test_environment_sets_rpc_and_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OGPU_CHAIN", "testnet")
    monkeypatch.setenv("OGPU_RPC_URL", "https://user:pw@rpc.example:8443/v1")
    assert ChainConfig.get_current_chain() is ChainId.OGPU_TESTNET
    assert ChainConfig.get_rpc() == "https://user:pw@rpc.example:8443/v1"
    # The URL in the environment belongs to the current chain only.
    assert ChainConfig.get_rpc(ChainId.OGPU_MAINNET) == MAINNET_RPC
    assert ChainConfig.get_contract_address("NEXUS") == CONTRACTS[ChainId.OGPU_TESTNET]["NEXUS"]


def test_environment_is_read_when_asked_not_at_import(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ChainConfig.get_current_chain() is ChainId.OGPU_MAINNET
    monkeypatch.setenv("OGPU_CHAIN", str(int(ChainId.OGPU_TESTNET)))
    assert ChainConfig.get_current_chain() is ChainId.OGPU_TESTNET


def test_environment_values_may_carry_stray_whitespace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OGPU_CHAIN", " testnet\n")
    monkeypatch.setenv("OGPU_RPC_URL", " http://127.0.0.1:8545\n")
    assert ChainConfig.get_current_chain() is ChainId.OGPU_TESTNET
    assert ChainConfig.get_rpc() == "http://127.0.0.1:8545"


def test_code_beats_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OGPU_CHAIN", "testnet")
    monkeypatch.setenv("OGPU_RPC_URL", "http://127.0.0.1:1")
    ChainConfig.set_chain("mainnet")
    assert ChainConfig.get_current_chain() is ChainId.OGPU_MAINNET
    ChainConfig.set_rpc("http://127.0.0.1:2")
    assert ChainConfig.get_rpc() == "http://127.0.0.1:2"


@pytest.mark.parametrize("chain", [1, 0, "mars", "", True, None, 1.5, "1071.0"])
def test_unknown_chain_is_a_typed_error(chain: object) -> None:
    with pytest.raises(ChainNotSupportedError, match="known chains"):
        ChainConfig.set_chain(chain)  # type: ignore[arg-type]
    assert ChainConfig.get_current_chain() is ChainId.OGPU_MAINNET


def test_unknown_chain_in_the_environment_is_a_typed_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OGPU_CHAIN", "goerli")
    with pytest.raises(ChainNotSupportedError):
        ChainConfig.get_current_chain()
    with pytest.raises(ConfigError):
        ChainConfig.get_rpc()


BAD_URLS = [
    "",
    "localhost:8545",
    "ftp://example.com",
    "ws://127.0.0.1:8546",
    "http://",
    "http:///path",
    "http://exa mple.com",
    "http://127.0.0.1:notaport",
    "http://127.0.0.1:0",
    "http://127.0.0.1:99999",
    "https://host:8545:1",
]


@pytest.mark.parametrize("url", BAD_URLS)
def test_malformed_rpc_url_is_refused(url: str) -> None:
    with pytest.raises(InvalidRpcUrlError):
        ChainConfig.set_rpc(url)
    assert ChainConfig.get_rpc() == MAINNET_RPC


@pytest.mark.parametrize("url", [None, 8545, b"http://127.0.0.1"])
def test_rpc_url_that_is_not_a_string_is_refused(url: object) -> None:
    with pytest.raises(InvalidRpcUrlError, match="string"):
        ChainConfig.set_rpc(url)  # type: ignore[arg-type]


@pytest.mark.parametrize("url", BAD_URLS[1:])
def test_malformed_rpc_url_in_the_environment_is_refused(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("OGPU_RPC_URL", url)
    with pytest.raises(InvalidRpcUrlError):
        ChainConfig.get_rpc()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8545",
        "https://rpc.example.com/v3/abc",
        "http://[::1]:8545/",
        "https://user:secret@node.example:443/path?key=1",
        "HTTP://LOCALHOST:8545",
    ],
)
def test_well_formed_rpc_urls_pass_unchanged(url: str) -> None:
    assert validate_rpc_url(url) == url


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("https://user:hunter2@node.example/rpc", "hunter2"),
        ("https://mainnet.infura.io/v3/0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef"),
        ("https://node.example/rpc?apikey=s3cr3t", "s3cr3t"),
    ],
)
def test_mask_url_hides_credentials(url: str, secret: str) -> None:
    masked = mask_url(url)
    assert secret not in masked
    assert "node.example" in masked or "infura.io" in masked


def test_invalid_url_error_does_not_echo_the_password() -> None:
    with pytest.raises(InvalidRpcUrlError) as caught:
        ChainConfig.set_rpc("ftp://user:hunter2@node.example")
    assert "hunter2" not in str(caught.value)


def test_unknown_contract_name_is_a_typed_error_that_is_still_a_key_error() -> None:
    from ogpu.types import ConfigError, UnknownContractError

    with pytest.raises(UnknownContractError, match="known: CONTROLLER, NEXUS, TERMINAL, VAULT") as info:
        ChainConfig.get_contract_address("NEXSU")
    assert isinstance(info.value, ConfigError) and isinstance(info.value, KeyError)


@pytest.mark.parametrize("url", [" http://127.0.0.1:8545", "http://127.0.0.1:8545 ", "http://local host"])
def test_rpc_url_with_whitespace_is_rejected(url: str) -> None:
    from ogpu.types import InvalidRpcUrlError

    with pytest.raises(InvalidRpcUrlError, match="whitespace"):
        ChainConfig.set_rpc(url)
