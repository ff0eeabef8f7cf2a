"""Several web processes on one port (WEB_CONCURRENCY > 1), each draining like a single one.

uvicorn's own `workers=` supervisor is not used: it builds a plain uvicorn.Server in each child,
so no child would fail readiness and wait SHUTDOWN_DELAY on SIGTERM, and it keeps its copy of the
listening socket open while the children drain, so new connections queue where nobody accepts
them. tests/test_web_shutdown.py and test_factor_08 run this one with WEB_CONCURRENCY=2.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

from . import observability
from .logs import get_logger
from .server import DrainingServer, build_config
from .settings import Settings

log = get_logger(__name__)


def _start_child(settings: Settings, sock: object) -> int:
    pid = os.fork()
    if pid:
        return pid
    # In the child: default signal handling until uvicorn installs its own.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    code = 0
    try:
        DrainingServer(build_config(settings), settings.shutdown_delay).run(sockets=[sock])  # type: ignore[list-item]
    except BaseException:  # any failure ends this child with a non-zero code
        log.exception("web process failed")
        code = 1
    observability.shutdown()  # os._exit skips atexit: send the spans and reports still buffered
    os._exit(code)


def run_processes(settings: Settings) -> None:
    """Fork WEB_CONCURRENCY servers sharing one socket; forward SIGTERM/SIGINT; exit with them."""
    sock = build_config(settings).bind_socket()
    children = {_start_child(settings, sock) for _ in range(settings.web_concurrency)}
    log.info("web processes started", count=len(children), port=settings.port)
    stopping = False

    def forward(sig: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        if not stopping:
            # The children hold the listening socket too and close it after SHUTDOWN_DELAY;
            # were this copy left open, the kernel would keep queueing connections nobody takes.
            sock.close()
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                children.discard(pid)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    failed = False
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        children.discard(pid)
        observability.process_ended(pid)
        code = os.waitstatus_to_exitcode(status)
        if stopping:
            failed = failed or code != 0
            continue
        log.error("web process died; starting another", pid=pid, exit_code=code)
        children.add(_start_child(settings, sock))
    sys.exit(1 if failed else 0)
