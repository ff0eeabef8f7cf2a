"""The web server: uvicorn bound to $PORT, failing readiness and draining on SIGTERM."""

from __future__ import annotations

import signal
import socket
import time
from types import FrameType

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from .app import create_app
from .logs import get_logger
from .settings import Settings

log = get_logger(__name__)


class DrainingServer(uvicorn.Server):
    """A uvicorn server that fails readiness first, waits SHUTDOWN_DELAY, then shuts down.

    uvicorn re-raises the signal after a clean shutdown, so the process would end by signal;
    this server treats SIGTERM as a request to stop and exits 0 once it has stopped. Requests in
    flight get GRACEFUL_TIMEOUT after the delay; then they are cancelled (their clients get a 500)
    and the lifespan shutdown runs.
    """

    def __init__(self, config: uvicorn.Config, shutdown_delay: float) -> None:
        super().__init__(config)
        self.shutdown_delay = shutdown_delay
        self.exit_at: float | None = None
        self.stop_signal: str | None = None
        self.drain_logged = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        app = self.config.loaded_app if self.config.loaded else None
        if self.exit_at is None:
            # Only record here: logging takes a lock that the interrupted code may hold.
            self.stop_signal = signal.Signals(sig).name
            self.exit_at = time.monotonic() + self.shutdown_delay
            _mark_draining(app)
            if self.shutdown_delay <= 0:
                self.should_exit = True
        elif sig == signal.SIGINT:  # Ctrl-C again: skip the delay, then the in-flight requests
            if self.should_exit:
                self.force_exit = True
            self.should_exit = True
        # A repeated SIGTERM changes nothing: a platform or honcho signals the whole process
        # group, and the supervisor forwards the signal too, so a process may get it twice.

    def _log_draining(self) -> None:
        if self.stop_signal is not None and not self.drain_logged:
            self.drain_logged = True
            log.info("draining", signal=self.stop_signal, delay=self.shutdown_delay)

    async def on_tick(self, counter: int) -> bool:
        self._log_draining()
        if self.exit_at is not None and time.monotonic() >= self.exit_at:
            self.should_exit = True
        return await super().on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._log_draining()  # with no SHUTDOWN_DELAY the loop may not tick before this
        await super().shutdown(sockets)


class H11JsonErrors(H11Protocol):
    """uvicorn's h11 protocol, answering a request it cannot parse with our JSON error body.

    h11 is the parser that bounds a request's line and headers (16 KiB, then 400 and the
    connection closed: memory stays bounded at the socket); httptools accepts headers of any size.
    """

    def send_400_response(self, msg: str) -> None:  # uvicorn's text is replaced
        body = b'{"error":"invalid HTTP request","request_id":null}'
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        for event in (
            h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event) or b"")
        self.transport.close()


def _mark_draining(app: object) -> None:
    # The loaded app may be wrapped in uvicorn's proxy middleware; find the FastAPI state.
    while app is not None:
        state = getattr(app, "state", None)
        if state is not None:
            state.draining = True
            return
        app = getattr(app, "app", None)


def build_config(settings: Settings) -> uvicorn.Config:
    """The uvicorn configuration that every web process uses."""
    return uvicorn.Config(
        create_app(settings),
        host="0.0.0.0",  # noqa: S104  # port binding: the platform routes to this port
        port=settings.port,
        log_config=None,
        access_log=False,
        server_header=False,
        http=H11JsonErrors,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        timeout_graceful_shutdown=settings.graceful_timeout,
        timeout_keep_alive=5,
        lifespan="on",
    )
