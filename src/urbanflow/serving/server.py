"""Run the service with uvicorn in a background thread (the demo, tests, benchmarks)."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn
from fastapi import FastAPI

from urbanflow.errors import ConfigError


def check_port(host: str, port: int) -> None:
    """ConfigError, before anything starts, when ``host:port`` cannot be listened on."""
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ConfigError(
                f"cannot listen on {host}:{port} ({error.strerror}); pass another --port"
            ) from None


class BackgroundServer:
    """``with BackgroundServer(app, host, port) as server:`` serves ``app`` until the block ends.

    The main thread keeps receiving Ctrl-C (uvicorn installs signal handlers only there).
    """

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 8000) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
        self.url = f"http://{host}:{port}"
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._server.should_exit = True
                raise ConfigError(
                    f"the server did not start on {self.url}; run `urbanflow serve` to see why"
                )
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
