"""Stop signals as a flag: how the worker and clock learn that the platform wants them to stop."""

from __future__ import annotations

import signal
import time
from types import FrameType


class StopSignal:
    """Turns SIGTERM and SIGINT into a flag that the main thread polls.

    The handler only records the signal: logging or taking locks inside a handler can deadlock
    the thread it interrupts. A second signal changes nothing (platforms and honcho may signal
    a process more than once), so a stop always runs to its end.
    """

    POLL_SECONDS = 0.05

    def __init__(self) -> None:
        self.received: str | None = None

    def install(self) -> StopSignal:
        """Handle SIGTERM and SIGINT from now on."""
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signal.Signals(signum).name

    def sleep(self, seconds: float) -> bool:
        """Sleep up to `seconds`, waking at once on a stop signal; True when one arrived."""
        deadline = time.monotonic() + seconds
        while self.received is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            time.sleep(min(remaining, self.POLL_SECONDS))
        return self.received is not None
