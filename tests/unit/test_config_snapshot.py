"""``ChainConfig.snapshot()`` / ``restore()``: what a fixture or the testing kit puts back."""

from __future__ import annotations

import pytest

from ogpu.chain import ChainConfig, ChainId

A = "https://a.example/rpc"
B = "https://b.example/rpc"


def test_restore_undoes_what_was_set_after_the_snapshot() -> None:
    ChainConfig.set_rpc(A, chain="testnet")
    saved = ChainConfig.snapshot()

    ChainConfig.set_chain("testnet")
    ChainConfig.set_rpc([B, A])
    ChainConfig.set_rpc(B, chain="mainnet")
    ChainConfig.restore(saved)

    assert ChainConfig.get_current_chain() is ChainId.OGPU_MAINNET
    assert ChainConfig.get_rpcs("testnet") == (A,)
    assert ChainConfig.get_rpc("mainnet") == "https://mainnet-rpc.ogpuscan.io"


def test_restore_sets_again_what_was_reset_after_the_snapshot() -> None:
    ChainConfig.set_chain("testnet")
    ChainConfig.set_rpc([A, B])
    saved = ChainConfig.snapshot()

    ChainConfig.reset_rpc()
    ChainConfig.set_chain("mainnet")
    ChainConfig.restore(saved)

    assert ChainConfig.get_current_chain() is ChainId.OGPU_TESTNET
    assert ChainConfig.get_rpcs() == (A, B)


def test_a_chain_left_to_the_environment_stays_with_it(monkeypatch: pytest.MonkeyPatch) -> None:
    saved = ChainConfig.snapshot()
    ChainConfig.set_chain("mainnet")
    ChainConfig.restore(saved)

    monkeypatch.setenv("OGPU_CHAIN", "testnet")
    assert ChainConfig.get_current_chain() is ChainId.OGPU_TESTNET


def test_restore_takes_only_a_snapshot() -> None:
    with pytest.raises(TypeError, match="snapshot"):
        ChainConfig.restore(None)  # type: ignore[arg-type]
