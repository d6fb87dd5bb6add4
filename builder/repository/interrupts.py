"""Hold Ctrl-C back while a few file-system steps must finish together (a publish, its undo, a clean-up)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


@contextmanager
def deferred_interrupts() -> Iterator[None]:
    """SIGINT and SIGTERM received inside the block are handled when it ends, not in it.

    A Ctrl-C between two renames of a publish, or in the middle of removing a staging folder, would leave a
    half-done state; after the block the state is whole. Then each held signal goes to the handler it had
    before (a Python handler is called, an ignored signal stays ignored, a default one raises
    KeyboardInterrupt so that the callers' clean-ups still run). Only the main thread receives signals:
    elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[signal.Signals] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        received.append(signal.Signals(signum))

    previous = {sig: signal.signal(sig, hold) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(received):
            handler = previous[sig]
            if callable(handler):
                handler(sig, None)
            elif handler != signal.SIG_IGN:
                raise KeyboardInterrupt
