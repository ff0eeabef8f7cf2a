"""The web process: one draining uvicorn server, or WEB_CONCURRENCY of them (supervisor.py)."""

from __future__ import annotations

from . import observability
from .startup import begin


def main() -> None:
    """Entry point of the `web` process type."""
    settings = begin("web")
    # Imported once the environment is known to be valid: a bad one stops web at once (exit 78)
    # instead of after loading the whole app.
    from .server import DrainingServer, build_config  # noqa: PLC0415
    from .supervisor import run_processes  # noqa: PLC0415

    if settings.web_concurrency > 1:
        run_processes(settings)
        return
    DrainingServer(build_config(settings), settings.shutdown_delay).run()
    observability.shutdown()  # the last requests' spans, within a bound (not left to atexit)
