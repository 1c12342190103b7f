"""Network layer: JSON-RPC over httpx, what a failure means, and chunked eth_getLogs reads."""
