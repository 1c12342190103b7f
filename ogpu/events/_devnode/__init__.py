"""Local development nodes (anvil, hardhat, ganache) with a log emitter, for the demo and the tests."""
