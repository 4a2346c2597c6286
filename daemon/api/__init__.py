"""The RPC methods, one module per namespace (``clients.py`` serves ``clients.*``).

Each handler is marked with its wire name, ``@handles("clients.list")``, so searching for a
method's name finds its handler; its docstring is the method's documentation. A namespace
is a class that takes its collaborators in its constructor; :meth:`Api.handlers` lists
what it serves. Handlers check, call the services that do the work, and shape the answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from clientlink.daemon.rpc_server import CallContext

Handler = Callable[[Any, CallContext], Awaitable[Any]]
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

_WIRE_NAME = "__rpc_method__"


def handles(method: str) -> Callable[[F], F]:
    """Mark a coroutine method as the handler of the RPC ``method`` (``namespace.verb``)."""

    def mark(function: F) -> F:
        setattr(function, _WIRE_NAME, method)
        return function

    return mark


class Api:
    """One namespace's handlers."""

    def handlers(self) -> dict[str, Handler]:
        """Wire name -> bound handler, for every ``@handles`` method of this class."""
        table: dict[str, Handler] = {}
        for klass in reversed(type(self).__mro__):
            for name, value in vars(klass).items():
                method = getattr(value, _WIRE_NAME, None)
                if method is not None:
                    table[method] = getattr(self, name)
        return table
