"""Running ``ogpu-events`` as a user does, and endpoints that are not nodes.

The endpoints are the wrong URLs newcomers paste: a closed port, a web
server that answers HTML or 501 to a POST, one that accepts the connection
and never answers. Each runs on 127.0.0.1 in a thread of the test process.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import pty
import re
import select
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CLI = [sys.executable, "-m", "ogpu.events._cli.command"]
# An event line: the block's time (local), the block, the event, its fields.
LINE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) +(?P<block>\d+) (?P<name>[A-Za-z]+) +(?P<fields>\S.*)$"
)


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    seconds: float


def env(**extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("OGPU_RPC_URL", "OGPU_CHAIN")}
    clean.update(extra)
    return clean


def run_cli(*args: str, timeout: float = 30.0, variables: Mapping[str, str] | None = None) -> Outcome:
    """The command in a subprocess with pipes (not a terminal), timed from launch to exit."""
    began = time.monotonic()
    done = subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env(**(variables or {})),
        check=False,
    )
    return Outcome(done.returncode, done.stdout, done.stderr, time.monotonic() - began)


def run_cli_in_terminal(*args: str, timeout: float = 30.0, columns: int | None = None) -> Outcome:
    """The command with stdout and stderr on a pseudo-terminal; both land in ``stdout``.

    ``columns``: the terminal's width, as a window of that size reports it.
    """
    controller, terminal = pty.openpty()
    if columns is not None:
        fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    began = time.monotonic()
    process = subprocess.Popen(
        [*CLI, *args], stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal, env=env()
    )
    os.close(terminal)
    chunks: list[bytes] = []
    try:
        while time.monotonic() - began < timeout:
            ready, _, _ = select.select([controller], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(controller, 65536)
                except OSError:  # EIO: the child closed its side
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            elif process.poll() is not None:
                break
        code = process.wait(timeout=max(0.1, timeout - (time.monotonic() - began)))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(controller)
    seconds = time.monotonic() - began
    text = b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")
    return Outcome(code, text, "", seconds)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class _HtmlPage(BaseHTTPRequestHandler):
    """A web site where the node should be: 200 and an HTML page for anything."""

    def do_POST(self) -> None:
        body = b"<!doctype html><html><body>Welcome</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # keep the test output clean
        pass


class _PlainServer(BaseHTTPRequestHandler):
    """``python -m http.server``: no POST handler, so 501 with an HTML body."""

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def http_server(kind: str) -> Iterator[str]:
    """``html`` or ``501``: the URL of a local HTTP server that is not a JSON-RPC node."""
    handler = {"html": _HtmlPage, "501": _PlainServer}[kind]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """A port that accepts connections and reads requests but never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                conn, _ = listener.accept()
                held.append(conn)  # kept open, never written to

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()
