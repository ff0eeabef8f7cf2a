"""The web process: one draining uvicorn server, or WEB_CONCURRENCY of them (supervisor.py)."""

from __future__ import annotations

from .server import DrainingServer, build_config
from .startup import begin
from .supervisor import run_processes


def main() -> None:
    """Entry point of the `web` process type."""
    settings = begin()
    if settings.web_concurrency > 1:
        run_processes(settings)
        return
    DrainingServer(build_config(settings), settings.shutdown_delay).run()
