"""A minimal JSON-RPC node over real HTTP on 127.0.0.1: a quiet chain (at block 5), any path.

For tests that need the real transport (httpx over httpcore over a socket),
so that everything httpx and httpcore log is logged, at any URL path and
query (an API key's place).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HEAD = 5


def _header(number: int) -> dict[str, str]:
    return {
        "number": hex(number),
        "hash": "0x" + f"{number + 1:064x}",
        "parentHash": "0x" + f"{number:064x}",
        "timestamp": hex(1_700_000_000 + number),
    }


def _answer(call: dict[str, Any], chain_id: int, head: int, max_range: int | None = None) -> dict[str, Any]:
    method, params = call.get("method"), call.get("params") or []
    result: Any
    if method == "eth_getLogs" and max_range is not None:
        query = params[0]
        if int(query["toBlock"], 16) - int(query["fromBlock"], 16) + 1 > max_range:
            error = {"code": -32005, "message": f"query exceeds max block range {max_range}"}
            return {"jsonrpc": "2.0", "id": call.get("id"), "error": error}
    if method == "eth_chainId":
        result = hex(chain_id)
    elif method == "eth_blockNumber":
        result = hex(head)
    elif method in ("eth_newFilter", "eth_newBlockFilter"):
        result = "0x1"
    elif method == "eth_uninstallFilter":
        result = True
    elif method in ("eth_getFilterChanges", "eth_getLogs"):
        result = []
    elif method == "eth_getBlockByNumber":
        tag = params[0] if params else "latest"
        number = head if tag == "latest" else int(tag, 16)
        result = _header(number) if number <= head else None
    else:
        error = {"code": -32601, "message": "method not found"}
        return {"jsonrpc": "2.0", "id": call.get("id"), "error": error}
    return {"jsonrpc": "2.0", "id": call.get("id"), "result": result}


@contextlib.contextmanager
def jsonrpc_server(
    chain_id: int = 1071, head: int = HEAD, slow_logs: float = 0.0, max_range: int | None = None
) -> Iterator[str]:
    """``http://127.0.0.1:PORT``: a node answering at any path, for as long as the block runs.

    ``slow_logs``: seconds each ``eth_getLogs`` takes (a long catch-up);
    ``max_range``: ``eth_getLogs`` over more blocks is refused, in erigon's words.
    """

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            calls = body if isinstance(body, list) else [body]
            if slow_logs and any(c.get("method") == "eth_getLogs" for c in calls):
                time.sleep(slow_logs)
            answers = [_answer(c, chain_id, head, max_range) for c in calls]
            answer: Any = answers if isinstance(body, list) else answers[0]
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
