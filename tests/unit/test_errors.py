"""The error tree: one root, public under ``ogpu.types``, each error carrying what a user needs."""

from __future__ import annotations

import pytest

import ogpu._errors as errors_module
import ogpu.types
from ogpu.types import (
    ChainChangedError,
    ChainNotSupportedError,
    CheckpointError,
    CheckpointLostError,
    CheckpointMismatchError,
    CheckpointUrlError,
    CheckpointVersionError,
    ConfigError,
    InvalidAddressError,
    InvalidArgumentError,
    InvalidRpcUrlError,
    LogDecodeError,
    OGPUError,
    RpcError,
    RpcHttpError,
    RpcProtocolError,
    RpcResponseError,
    RpcTransportError,
    UnknownContractError,
    UnsupportedNodeError,
)

# child -> parent, as the tree in ogpu/_errors.py draws it
TREE: dict[type[Exception], type[Exception]] = {
    ConfigError: OGPUError,
    ChainNotSupportedError: ConfigError,
    InvalidRpcUrlError: ConfigError,
    UnknownContractError: ConfigError,
    InvalidArgumentError: OGPUError,
    InvalidAddressError: InvalidArgumentError,
    RpcError: OGPUError,
    RpcTransportError: RpcError,
    RpcHttpError: RpcError,
    RpcProtocolError: RpcError,
    RpcResponseError: RpcError,
    UnsupportedNodeError: RpcError,
    ChainChangedError: RpcError,
    LogDecodeError: OGPUError,
    CheckpointError: OGPUError,
    CheckpointUrlError: CheckpointError,
    CheckpointMismatchError: CheckpointError,
    CheckpointVersionError: CheckpointError,
    CheckpointLostError: CheckpointError,
}


def test_every_error_is_rooted_at_ogpu_error_and_public_in_types() -> None:
    names = set(errors_module.__all__)
    assert names == {cls.__name__ for cls in TREE} | {"OGPUError"}
    for name in names:
        cls = getattr(errors_module, name)
        assert issubclass(cls, OGPUError)
        assert getattr(ogpu.types, name) is cls
        assert name in ogpu.types.__all__


@pytest.mark.parametrize(("child", "parent"), TREE.items(), ids=lambda c: getattr(c, "__name__", ""))
def test_tree_shape(child: type[Exception], parent: type[Exception]) -> None:
    assert child.__bases__[0] is parent


def test_module_docstring_draws_every_error() -> None:
    doc = errors_module.__doc__ or ""
    for name in errors_module.__all__:
        assert name in doc


def test_bad_arguments_are_also_value_errors() -> None:
    # Code written against plain Python conventions can catch ValueError.
    assert issubclass(InvalidAddressError, ValueError)
    assert issubclass(InvalidArgumentError, ValueError)
    assert issubclass(CheckpointUrlError, InvalidArgumentError)


def test_response_error_carries_code_message_and_data() -> None:
    exc = RpcResponseError(
        "filter not found", code=-32000, data={"x": 1}, url="http://h/***", method="eth_getFilterChanges"
    )
    assert (exc.code, exc.args[0], exc.data) == (-32000, "filter not found", {"x": 1})
    assert str(exc) == "JSON-RPC error -32000: filter not found (eth_getFilterChanges at http://h/***)"
    assert isinstance(exc, RpcError)


def test_http_error_carries_status_and_retry_after() -> None:
    exc = RpcHttpError("HTTP 429", status=429, retry_after=3.0, url="http://h", method="eth_blockNumber")
    assert (exc.status, exc.retry_after) == (429, 3.0)
    assert str(exc) == "HTTP 429 (eth_blockNumber at http://h)"
    assert RpcHttpError("HTTP 502", status=502).retry_after is None


def test_transport_error_assumes_the_request_may_have_been_processed() -> None:
    # Unless told otherwise: assuming a lost answer is the safe side for eth_getFilterChanges.
    assert RpcTransportError("reset").maybe_processed is True
    assert RpcTransportError("refused", maybe_processed=False).maybe_processed is False


def test_rpc_error_without_context_prints_just_the_message() -> None:
    assert str(RpcError("boom")) == "boom"
