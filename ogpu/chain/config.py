"""Which chain the SDK talks to: chain ids, default RPC URLs, contract addresses.

Precedence for the RPC URLs of a chain: ``ChainConfig.set_rpc`` in code, then
``OGPU_RPC_URL`` in the environment (for the current chain only; several
URLs comma separated), then the chain's public default. A chain has one or
more URLs in order of preference; ``get_rpc`` answers the first, as the
``ogpu`` package 0.2 did, and ``get_rpcs`` all of them. The current chain is ``set_chain`` in code, then
``OGPU_CHAIN`` (``mainnet``, ``testnet`` or a chain id), then mainnet.
The environment is read when asked, not at import, so a service can set it
up before first use.

Nothing here does I/O: ``set_rpc`` checks the URL's form, never the network
(the ``ogpu`` package 0.2 probed the node there).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar
from urllib.parse import urlsplit

from ogpu._errors import ChainNotSupportedError, InvalidRpcUrlError, UnknownContractError
from ogpu._masking import mask_url

__all__ = [
    "CHAIN_RPC_URLS",
    "ChainConfig",
    "ChainId",
    "ConfigSnapshot",
    "mask_url",
    "parse_chain",
    "validate_rpc_url",
    "validate_rpc_urls",
]


class ChainId(IntEnum):
    OGPU_MAINNET = 1071
    OGPU_TESTNET = 200820172034


_DEFAULT_RPC: dict[ChainId, str] = {
    ChainId.OGPU_MAINNET: "https://mainnet-rpc.ogpuscan.io",
    ChainId.OGPU_TESTNET: "https://testnetrpc.ogpuscan.io",
}

_CONTRACTS: dict[ChainId, dict[str, str]] = {
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

# Keys are spelled without separators and in lower case: "OGPU-Testnet",
# "ogpu_testnet" and "OgpuTestnet" all find the same chain.
_CHAIN_NAMES: dict[str, ChainId] = {
    "mainnet": ChainId.OGPU_MAINNET,
    "ogpumainnet": ChainId.OGPU_MAINNET,
    "testnet": ChainId.OGPU_TESTNET,
    "ogputestnet": ChainId.OGPU_TESTNET,
}

_HOST = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._~%-]+)$")


def parse_chain(chain: object) -> ChainId:
    """Turn a ``ChainId``, a chain id (int or digits) or a name into a ``ChainId``.

    Names are ``mainnet`` and ``testnet`` (or ``ogpu-mainnet`` ...) in any
    case, with dashes, underscores or CamelCase.
    """
    if isinstance(chain, ChainId):
        return chain
    if isinstance(chain, int) and not isinstance(chain, bool):
        try:
            return ChainId(chain)
        except ValueError:
            pass
    elif isinstance(chain, str):
        key = re.sub(r"[\s_-]", "", chain).lower()
        if key in _CHAIN_NAMES:
            return _CHAIN_NAMES[key]
        if key.isdigit():
            return parse_chain(int(key))
    known = ", ".join(f"{c.name.lower().removeprefix('ogpu_')} ({c.value})" for c in ChainId)
    raise ChainNotSupportedError(f"unknown chain {chain!r}; known chains: {known}", chain_id=chain)


def validate_rpc_url(url: object) -> str:
    """Return ``url`` unchanged if it is an absolute http(s) URL with a host."""
    if not isinstance(url, str):
        raise InvalidRpcUrlError(f"RPC URL must be a string, got {type(url).__name__}")
    if not url.strip():
        raise InvalidRpcUrlError("RPC URL is empty", url=url)
    if "://" not in url:
        shown = mask_url(url.strip())
        guess = "http://" + shown.lstrip("/")
        hint = f" (did you mean {guess!r}?)" if not any(c.isspace() for c in url) else ""
        raise InvalidRpcUrlError(
            f"RPC URL {shown!r} has no scheme: it must start with http:// or https://{hint}", url=url
        )
    if any(c.isspace() for c in url):
        raise InvalidRpcUrlError(f"RPC URL contains whitespace: {mask_url(url.strip())!r}", url=url)
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a port that is not a number
    except ValueError as exc:
        raise InvalidRpcUrlError(f"malformed RPC URL {mask_url(url)!r}: {exc}", url=url) from None
    host = parts.hostname or ""
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidRpcUrlError(
            f"RPC URL {mask_url(url)!r} must use http:// or https://, not {parts.scheme}://", url=url
        )
    if not host:
        raise InvalidRpcUrlError(f"RPC URL {mask_url(url)!r} has no host after {parts.scheme}://", url=url)
    if (
        parts.scheme not in ("http", "https")
        or not host
        or not _HOST.match(host if ":" not in host else f"[{host}]")
    ):
        raise InvalidRpcUrlError(
            f"RPC URL must look like http(s)://host[:port][/path], got {mask_url(url)!r}", url=url
        )
    if port == 0:
        raise InvalidRpcUrlError(f"RPC URL has port 0: {mask_url(url)!r}", url=url)
    return url


def validate_rpc_urls(urls: object) -> tuple[str, ...]:
    """Return one URL or a list/tuple of URLs as a tuple, each checked by ``validate_rpc_url``.

    An empty list, a URL listed twice or a URL of the wrong form is refused
    with ``InvalidRpcUrlError`` naming the entry (masked): a typo in the
    third of three endpoints must not wait for the day the first two fail.
    """
    if isinstance(urls, str):
        return (validate_rpc_url(urls),)
    if not isinstance(urls, list | tuple):
        raise InvalidRpcUrlError(
            f"RPC URLs must be a string or a list or tuple of strings, got {type(urls).__name__}"
        )
    if not urls:
        raise InvalidRpcUrlError("the list of RPC URLs is empty: give at least one")
    seen: dict[tuple[str, ...], int] = {}
    for number, url in enumerate(urls, start=1):
        try:
            validate_rpc_url(url)
        except InvalidRpcUrlError as exc:
            raise InvalidRpcUrlError(f"RPC URL {number} of {len(urls)}: {exc}", url=url) from None
        key = _same_endpoint_key(url)
        if key in seen:
            raise InvalidRpcUrlError(
                f"RPC URL {number} of {len(urls)} ({mask_url(url)!r}) repeats URL {seen[key]}: "
                "list each endpoint once",
                url=url,
            )
        seen[key] = number
    return tuple(urls)


def _same_endpoint_key(url: str) -> tuple[str, ...]:
    """The same endpoint however spelled: scheme and host in any case, a default port, a final slash."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    host = (parts.hostname or "").lower()
    user = f"{parts.username or ''}:{parts.password or ''}"
    return (scheme, user, host, str(port), parts.path.rstrip("/"), parts.query)


@dataclass(frozen=True)
class ConfigSnapshot:
    """What ``ChainConfig`` was set to in code at one moment; opaque, for ``ChainConfig.restore``."""

    _chain: ChainId | None
    _rpc: tuple[tuple[ChainId, tuple[str, ...]], ...]


class ChainConfig:
    """Process-wide chain selection, compatible with the existing ``ogpu`` API."""

    _current: ClassVar[ChainId | None] = None
    _rpc_overrides: ClassVar[dict[ChainId, tuple[str, ...]]] = {}

    # Parameter names are those of the ogpu package 0.2 (chain_id,
    # contract_name, chain), so its callers' keyword arguments still work.

    @classmethod
    def set_chain(cls, chain_id: ChainId | int | str) -> None:
        cls._current = parse_chain(chain_id)

    @classmethod
    def get_current_chain(cls) -> ChainId:
        if cls._current is not None:
            return cls._current
        env = os.environ.get("OGPU_CHAIN", "").strip()
        return parse_chain(env) if env else ChainId.OGPU_MAINNET

    @classmethod
    def _resolve(cls, chain: ChainId | int | str | None) -> ChainId:
        return cls.get_current_chain() if chain is None else parse_chain(chain)

    @classmethod
    def set_rpc(cls, url: str | Sequence[str], chain: ChainId | int | str | None = None) -> None:
        """Use ``url`` for ``chain`` (default: the current one): a URL, or a list/tuple by preference."""
        cls._rpc_overrides[cls._resolve(chain)] = validate_rpc_urls(url)

    @classmethod
    def get_rpc(cls, chain: ChainId | int | str | None = None) -> str:
        """The preferred (first) RPC URL of ``chain``: the one URL 0.2 code knows about."""
        return cls.get_rpcs(chain)[0]

    @classmethod
    def get_rpcs(cls, chain: ChainId | int | str | None = None) -> tuple[str, ...]:
        """Every RPC URL of ``chain`` (default: the current chain), in order of preference."""
        target = cls._resolve(chain)
        if target in cls._rpc_overrides:
            return cls._rpc_overrides[target]
        env = os.environ.get("OGPU_RPC_URL", "").strip()
        if env and target == cls.get_current_chain():
            return validate_rpc_urls([entry.strip() for entry in env.split(",")])
        return (_DEFAULT_RPC[target],)

    @classmethod
    def reset_rpc(cls, chain: ChainId | int | str | None = None) -> None:
        cls._rpc_overrides.pop(cls._resolve(chain), None)

    @classmethod
    def snapshot(cls) -> ConfigSnapshot:
        """What is set in code now (the chain, each chain's URLs), for :meth:`restore`.

        The environment is not part of it: it is read when asked, as ever.
        Test fixtures and ``ogpu.events.testing.FakeNode`` put back with it
        what they changed.
        """
        return ConfigSnapshot(cls._current, tuple(cls._rpc_overrides.items()))

    @classmethod
    def restore(cls, snapshot: ConfigSnapshot) -> None:
        """Set back what ``snapshot`` saw: what was set since is undone, what was unset is set again."""
        if not isinstance(snapshot, ConfigSnapshot):
            raise TypeError(f"restore() takes what ChainConfig.snapshot() returned, got {snapshot!r:.80}")
        cls._current = snapshot._chain
        cls._rpc_overrides.clear()
        cls._rpc_overrides.update(snapshot._rpc)

    @classmethod
    def get_contract_address(cls, contract_name: str, chain: ChainId | int | str | None = None) -> str:
        """The address of ``NEXUS``, ``CONTROLLER``, ``TERMINAL`` or ``VAULT`` (any case).

        Any other name raises ``UnknownContractError``, which is both a
        ``KeyError`` and a ``ValueError`` (the ``ogpu`` package 0.2 raised the latter).
        """
        contracts = _CONTRACTS[cls._resolve(chain)]
        try:
            return contracts[contract_name.upper()]
        except (KeyError, AttributeError):
            known = ", ".join(sorted(contracts))
            raise UnknownContractError(f"unknown contract {contract_name!r}; known: {known}") from None

    @classmethod
    def get_all_supported_chains(cls) -> list[ChainId]:
        return list(ChainId)


class _RpcUrls(Mapping[ChainId, str]):
    """Each chain's RPC URL as ``ChainConfig.get_rpc(chain)`` answers it now.

    Read-only: a URL is set with ``ChainConfig.set_rpc``, which checks it.
    It follows ``set_rpc`` and ``reset_rpc``, as ``CHAIN_RPC_URLS`` did in the
    ``ogpu`` package 0.2.
    """

    def __getitem__(self, chain: ChainId) -> str:
        if chain not in _DEFAULT_RPC:
            raise KeyError(chain)
        return ChainConfig.get_rpc(chain)

    def __iter__(self) -> Iterator[ChainId]:
        return iter(_DEFAULT_RPC)

    def __len__(self) -> int:
        return len(_DEFAULT_RPC)

    def __repr__(self) -> str:
        return f"CHAIN_RPC_URLS({ {chain.name: mask_url(url) for chain, url in self.items()} })"


CHAIN_RPC_URLS: Mapping[ChainId, str] = _RpcUrls()
