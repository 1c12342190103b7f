"""Every error ``ogpu`` raises, rooted at :class:`OGPUError`.

::

    OGPUError
    ├── ConfigError                    the library is pointed somewhere it cannot work
    │   ├── ChainNotSupportedError     unknown chain id or name
    │   ├── InvalidRpcUrlError         RPC URL that is not http(s)://host[:port][/path]
    │   └── UnknownContractError       contract name ChainConfig does not know (also KeyError, ValueError)
    ├── InvalidArgumentError           bad argument to a public call (also a ValueError)
    │   └── InvalidAddressError        not a 20-byte hex address string
    ├── RpcError                       talking to the node failed
    │   ├── RpcTransportError          connection refused/reset, timeout
    │   ├── RpcHttpError               HTTP status other than 200
    │   ├── RpcProtocolError           the answer is not JSON-RPC (HTML, garbage, wrong id)
    │   ├── RpcResponseError           the node answered with a JSON-RPC error object
    │   ├── UnsupportedNodeError       the node lacks what following needs (logs, head)
    │   └── ChainChangedError          the node now serves another chain (eth_chainId changed)
    ├── LogDecodeError                 a log does not match the vendored ABI
    └── CheckpointError                a checkpoint's database cannot be used (.url masked)
        ├── CheckpointUrlError         a checkpoint URL of the wrong form (also InvalidArgumentError)
        ├── CheckpointMismatchError    a checkpoint written for another chain or stream
        ├── CheckpointVersionError     a checkpoint table written by a newer version
        └── CheckpointLostError        another replica took the lease: this one may not commit

The errors the ``ogpu`` package 0.2 constructed with keywords still take
them: ``ChainNotSupportedError(chain_id=999)``, ``InvalidRpcUrlError(url=...)``.

Errors from the transport are translated once, in ``ogpu.events._net.rpc``;
nothing above that layer sees an ``httpx`` exception.
"""

from __future__ import annotations

from ogpu._masking import mask_url

__all__ = [
    "ChainChangedError",
    "ChainNotSupportedError",
    "CheckpointError",
    "CheckpointLostError",
    "CheckpointMismatchError",
    "CheckpointUrlError",
    "CheckpointVersionError",
    "ConfigError",
    "InvalidAddressError",
    "InvalidArgumentError",
    "InvalidRpcUrlError",
    "LogDecodeError",
    "OGPUError",
    "RpcError",
    "RpcHttpError",
    "RpcProtocolError",
    "RpcResponseError",
    "RpcTransportError",
    "UnknownContractError",
    "UnsupportedNodeError",
]


class OGPUError(Exception):
    """Root of every error raised by ``ogpu``."""


class ConfigError(OGPUError):
    """Raised when the chain configuration cannot be used."""


class ChainNotSupportedError(ConfigError):
    """Raised for a chain id or name that ``ChainId`` does not know; ``chain_id`` is that value.

    Built with a message, or with ``chain_id=`` alone (the message then names it).
    """

    def __init__(self, message: str | None = None, *, chain_id: object = None) -> None:
        super().__init__(f"chain {chain_id!r} is not supported" if message is None else message)
        self.chain_id = chain_id


class InvalidRpcUrlError(ConfigError):
    """Raised for an RPC URL that is not an absolute http(s) URL.

    ``url`` is that URL with its credentials masked (``None`` when not given).
    Built with a message, or with ``url=`` alone (the message then names it).
    """

    def __init__(self, message: str | None = None, *, url: object = None) -> None:
        # The URL is masked here too, as everywhere the library shows one: errors end up in logs.
        shown = mask_url(url) if isinstance(url, str) else None if url is None else repr(url)
        super().__init__(f"invalid RPC URL {shown!r}" if message is None else message)
        self.url: str | None = shown


class UnknownContractError(ConfigError, KeyError, ValueError):
    """Raised by ``ChainConfig.get_contract_address`` for a name it does not know.

    A ``KeyError`` (a lookup by name) and a ``ValueError`` (what the ``ogpu``
    package 0.2 raised), so either ``except`` clause catches it.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class InvalidArgumentError(OGPUError, ValueError):
    """Raised at call time for an argument a public call cannot accept."""


class InvalidAddressError(InvalidArgumentError):
    """Raised for a value that is not a ``0x``-prefixed 20-byte hex string."""


class RpcError(OGPUError):
    """Raised when a JSON-RPC call fails; ``url`` has its credentials masked."""

    def __init__(self, message: str, *, url: str = "", method: str = "") -> None:
        super().__init__(message)
        self.url = url
        self.method = method

    def __str__(self) -> str:
        where = f" ({self.method} at {self.url})" if self.method or self.url else ""
        return f"{self.args[0]}{where}"


class RpcTransportError(RpcError):
    """Raised when no answer arrived: refused, reset, or timed out.

    ``maybe_processed`` is true when the request had been sent, so the node
    may have acted on it (which matters for ``eth_getFilterChanges``).
    ``unreachable`` is true when no connection could be made at all (refused,
    name not resolved), ``timed_out`` when the time allowed ran out.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str = "",
        method: str = "",
        maybe_processed: bool = True,
        unreachable: bool = False,
        timed_out: bool = False,
    ) -> None:
        super().__init__(message, url=url, method=method)
        self.maybe_processed = maybe_processed
        self.unreachable = unreachable
        self.timed_out = timed_out


class RpcHttpError(RpcError):
    """Raised for an HTTP status other than 200; ``retry_after`` in seconds if sent."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        retry_after: float | None = None,
        url: str = "",
        method: str = "",
    ) -> None:
        super().__init__(message, url=url, method=method)
        self.status = status
        self.retry_after = retry_after


class RpcProtocolError(RpcError):
    """Raised when the body is not a JSON-RPC 2.0 answer to what was asked."""


class RpcResponseError(RpcError):
    """Raised when the node answers with a JSON-RPC error object."""

    def __init__(
        self,
        message: str,
        *,
        code: int,
        data: object = None,
        url: str = "",
        method: str = "",
    ) -> None:
        super().__init__(message, url=url, method=method)
        self.code = code
        self.data = data

    def __str__(self) -> str:
        return f"JSON-RPC error {self.code}: {super().__str__()}"


class UnsupportedNodeError(RpcError):
    """Raised when the node offers neither log filters nor ``eth_getLogs``, or no ``eth_blockNumber``."""


class LogDecodeError(OGPUError):
    """Raised when a log's topics or data do not match the vendored Nexus ABI."""


class ChainChangedError(RpcError):
    """Raised out of a watcher when the node's ``eth_chainId`` changes under a running stream.

    Events of one chain cannot continue on another: the endpoint was pointed
    elsewhere or a development node restarted with another chain id.
    ``expected`` and ``actual`` are the two chain ids.
    """

    def __init__(self, message: str, *, expected: int, actual: int, url: str = "", method: str = "") -> None:
        super().__init__(message, url=url, method=method)
        self.expected = expected
        self.actual = actual


class CheckpointError(OGPUError):
    """Raised when a checkpoint's database cannot be used; ``url`` is its URL, credentials masked."""

    def __init__(self, message: str, *, url: str = "") -> None:
        super().__init__(message)
        self.url = url


class CheckpointUrlError(CheckpointError, InvalidArgumentError):
    """Raised when ``Checkpoint()`` is given a URL that is neither ``sqlite:///...`` nor ``postgresql://...``."""


class CheckpointMismatchError(CheckpointError):
    """Raised when a checkpoint was written for another chain, Nexus, event set or scope."""


class CheckpointVersionError(CheckpointError):
    """Raised when the checkpoint table was written by a newer version of ``ogpu``."""


class CheckpointLostError(CheckpointError):
    """Raised when another replica took the checkpoint's lease: this process's writes were rolled back."""
