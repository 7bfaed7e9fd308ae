"""Run an ASGI app under uvicorn on loopback: in the foreground (`serve`) or in a thread.

The socket is bound before uvicorn starts, so port 0 gives a free port that is known at
once: the demo and the integration tests start real servers this way.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from types import FrameType
from typing import Any

import uvicorn


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _http_protocol() -> Any:
    """uvicorn's httptools protocol with the decision routes' fast path, or h11 where httptools is missing."""
    try:
        from guardrails.decision_protocol import DecisionProtocol
    except ImportError:
        return "h11"
    return DecisionProtocol


def uvicorn_config(app: Any, log_level: str = "warning", **options: Any) -> uvicorn.Config:
    """uvicorn with uvloop and httptools when installed (the `serve` extra), asyncio and h11 otherwise."""
    return uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        loop="auto",
        http=_http_protocol(),
        lifespan="on",
        timeout_graceful_shutdown=30,
        proxy_headers=False,  # nothing reads the client address; X-Forwarded-* parsing was per-request work
        log_config=None,  # uvicorn's loggers propagate to ours (JSON lines once configured)
        **options,
    )


def run_in_foreground(app: Any, sock: socket.socket, log_level: str = "info") -> None:
    """Serve `app` on `sock` until SIGTERM or SIGINT, shut down gracefully, then return.

    uvicorn finishes the requests in flight on either signal, then raises the signal again
    so that the process dies by it (exit code -15 for SIGTERM, a KeyboardInterrupt traceback
    for Ctrl-C). The shutdown is complete by then: the handlers set here take the re-raised
    signal, and the caller returns normally (`guardrails serve` exits 0).
    """
    server = uvicorn.Server(uvicorn_config(app, log_level=log_level))

    def stop(signum: int, frame: FrameType | None) -> None:
        server.should_exit = True  # also for a signal that comes before uvicorn's own handlers

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class ServerThread:
    """An ASGI app served on 127.0.0.1 from a background thread; `url` is ready after `start`."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning") -> None:
        self.socket = bind(host, port)
        self.port: int = self.socket.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self.server = uvicorn.Server(uvicorn_config(app, log_level=log_level))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def start(self, timeout_s: float = 10.0) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on {self.url} did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout_s)
        self.socket.close()

    def __enter__(self) -> ServerThread:
        return self if self.thread.is_alive() else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
