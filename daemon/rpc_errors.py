"""The error a method handler raises to answer with a JSON-RPC error."""

from __future__ import annotations

from typing import Any

from clientlink.common.protocol import ErrorCode


class RpcFailure(Exception):
    """Answer the call with ``code`` and a sentence a person can act on."""

    def __init__(self, code: ErrorCode, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data
