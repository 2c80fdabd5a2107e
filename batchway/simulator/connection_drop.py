"""Ending a call by dropping its connection, with no answer at all (a simulated connection reset).

A route raises `DropConnection`. It derives from BaseException so Starlette's error middleware, which
turns every `Exception` into a 500, lets it through, up to `DropConnectionMiddleware`, the outermost
layer, which still holds the server's own `send` and through it the socket. The socket is closed
with SO_LINGER 0, so the client gets a TCP reset instead of a response.
"""

import asyncio
import contextlib
import socket
import struct
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send


class DropConnection(BaseException):
    """Close this call's connection without answering."""


class DropConnectionMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except DropConnection:
            # uvicorn's `send` is a method of its request cycle, which holds the transport.
            cycle: Any = getattr(send, "__self__", None)
            transport = getattr(cycle, "transport", None)
            if transport is None:
                await _break_mid_answer(send)
                return
            _reset(transport)
            # Let the server see the connection lost before we return, or it would answer 500.
            for _ in range(10):
                if getattr(cycle, "disconnected", True):
                    break
                await asyncio.sleep(0)


def _reset(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def _break_mid_answer(send: Send) -> None:
    """Without access to the socket (another server): promise a body, then fail so the server cuts
    the connection before it is complete."""
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1024")]})
    raise RuntimeError("simulated connection reset")
