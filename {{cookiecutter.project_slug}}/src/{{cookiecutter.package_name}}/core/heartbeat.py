"""LIVENESS_FILE: how a worker or clock, which serve no HTTP, tell their probe they are alive."""

from __future__ import annotations

from pathlib import Path

from .startup import fail


class Heartbeat:
    """Renews LIVENESS_FILE's modification time while the process can do its work: the liveness
    probe of a process without an HTTP server reads its age (docs/processes.md)."""

    INTERVAL = 5.0  # seconds between beats; the probe allows 60 s

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.failed = False

    def beat(self) -> None:
        """Touch the file (nothing when LIVENESS_FILE is unset)."""
        if self.path is None:
            return
        try:
            self.path.touch()
        except OSError as error:
            if not self.failed:  # say it once: the probe will restart the process anyway
                fail(f"cannot write LIVENESS_FILE ({type(error).__name__})")
            self.failed = True
