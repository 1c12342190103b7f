"""The development nodes themselves: what the integration tests rely on, on each node."""

from __future__ import annotations

import sys

import pytest

from ogpu.events._codec.abi import EVENTS
from ogpu.events._devnode.nodes import NODES, DevNode
from tests.support.devnodes import random_address
from tests.support.fakenode import NEXUS


def test_the_emitter_makes_logs_that_decode(dev_node: DevNode) -> None:
    task, provider = random_address(), random_address()
    tx = dev_node.emit(NEXUS, "Attempted", task, provider, 12345)
    [raw] = dev_node.receipt(tx)["logs"]
    assert raw["address"].lower() == NEXUS.lower()
    event = EVENTS["Attempted"].decode(raw)
    assert (event.task.lower(), event.provider.lower(), event.suggested_payment) == (task, provider, 12345)
    [by_filter] = dev_node.rpc("eth_getLogs", {"blockHash": raw["blockHash"], "address": NEXUS})
    assert by_filter["logIndex"] == raw["logIndex"]


def test_one_block_packs_several_transactions_in_order(fresh_dev_node: DevNode) -> None:
    # A node of its own: it counts blocks, which nothing else may mine meanwhile.
    dev_node = fresh_dev_node
    before = dev_node.block_number()
    with dev_node.one_block():
        hashes = [dev_node.emit(NEXUS, "TaskStatusChanged", random_address(), n % 6) for n in range(5)]
        assert dev_node.block_number() == before, "nothing is mined while the block is held"
    receipts = [dev_node.receipt(tx) for tx in hashes]
    assert {int(r["blockNumber"], 16) for r in receipts} == {before + 1}
    # Log indexes count per block, as filters and eth_getLogs report them (ganache's
    # raw receipts count per transaction; its receipt() helper fixes that).
    assert [int(r["logs"][0]["logIndex"], 16) for r in receipts] == list(range(5))
    logs = dev_node.rpc("eth_getLogs", {"blockHash": receipts[0]["blockHash"]})
    assert [entry["transactionHash"] for entry in logs] == hashes
    # Automine is back: the next transaction gets a block of its own (its
    # receipt is awaited, as a send may answer before the block is sealed).
    after = dev_node.receipt(dev_node.emit(NEXUS, "TaskStatusChanged", random_address(), 1))
    assert int(after["blockNumber"], 16) == before + 2


def test_mine_snapshot_and_revert(fresh_dev_node: DevNode) -> None:
    node = fresh_dev_node
    start = node.block_number()
    node.mine(3)
    assert node.block_number() == start + 3
    kept = node.rpc("eth_getBlockByNumber", hex(start + 3), False)["hash"]
    snapshot = node.snapshot()
    tx = node.emit(NEXUS, "TaskStatusChanged", random_address(), 1)
    node.mine(2)
    assert node.block_number() == start + 6
    node.revert(snapshot)
    assert node.block_number() == start + 3
    assert node.rpc("eth_getTransactionReceipt", tx) is None
    assert node.rpc("eth_getBlockByNumber", hex(start + 3), False)["hash"] == kept
    replacement = node.emit(NEXUS, "TaskStatusChanged", random_address(), 2)
    assert int(node.receipt(replacement)["blockNumber"], 16) == start + 4


def test_restart_gives_a_new_chain_on_the_same_port(fresh_dev_node: DevNode) -> None:
    node = fresh_dev_node
    url = node.url
    node.mine(5)
    filter_id = node.rpc("eth_newFilter", {"address": NEXUS})
    node.restart()
    assert node.url == url
    assert node.block_number() == 0
    assert int(node.rpc("eth_chainId"), 16) == 1071
    # The old chain's filter is unknown: an error on anvil and ganache, null on hardhat.
    try:
        assert node.rpc("eth_getFilterChanges", filter_id) is None
    except RuntimeError as exc:
        assert "filter not found" in str(exc)
    # And the emitter is gone with the old chain, until installed again.
    assert node.rpc("eth_getCode", NEXUS, "latest") in ("0x", "0x0")
    node.install_emitter(NEXUS)
    assert node.receipt(node.emit(NEXUS, "TaskStatusChanged", random_address(), 1))["logs"]


@pytest.mark.parametrize("name", NODES)
def test_a_node_that_is_not_installed_is_reported_by_name(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from ogpu.events._devnode import base as _devnode_base
    from ogpu.events._devnode import nodes as _devnode

    empty = tmp_path_factory.mktemp("nothing")
    monkeypatch.setattr(_devnode, "cache_dirs", lambda tool: [empty / ".cache" / tool])
    monkeypatch.setattr(_devnode_base, "cache_dirs", lambda tool: [empty / ".cache" / tool])
    monkeypatch.setenv("PATH", str(empty))
    for variable in ("OGPU_ANVIL", "OGPU_GANACHE"):
        monkeypatch.delenv(variable, raising=False)
    with pytest.raises(_devnode.DevNodeNotFoundError, match=name):
        NODES[name].find()
    if name == "anvil":
        with pytest.raises(_devnode.AnvilNotFoundError):
            _devnode.find_anvil()


def test_a_node_that_dies_at_start_reports_its_stderr() -> None:
    class Broken(DevNode):
        name = "broken"

        def command(self) -> list[str]:
            return [sys.executable, "-c", "import sys; sys.stderr.write('no chain for you'); sys.exit(3)"]

    node = Broken()
    with pytest.raises(RuntimeError, match="broken exited with 3: no chain for you"):
        node.start(timeout=10)
    assert not node.running
    node.stop()
