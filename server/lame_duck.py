"""Lame-duck shutdown: on SIGTERM, readiness fails at once while requests are still served.

uvicorn closes its listener as soon as it is signalled, so a connection that a load balancer
had already opened is reset under a request it sent meanwhile (HAProxy logs `SD--`), and a
POST cannot be retried. Here the first SIGTERM (or SIGINT) only marks the worker as draining:
`/health/ready` answers 503, the balancer takes the replica out, and only after
`APP_SHUTDOWN_LAME_DUCK_SECONDS` is the signal handed to uvicorn, which then closes the
listener and lets the requests in flight finish (`APP_SHUTDOWN_GRACE_SECONDS`). A second
SIGINT is handed over at once.
"""

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Generator
from types import FrameType
from typing import Any

logger = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)
# Where the app's lifespan state keeps the event that is set once the worker is draining.
DRAINING = "draining"


@contextlib.contextmanager
def lame_duck(seconds: float, draining: asyncio.Event) -> Generator[None]:
    """Wrap the server's signal handlers (uvicorn's, installed before the lifespan starts).

    Without a main thread to receive signals (a test client's portal) nothing changes.
    """
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    handed_over: dict[int, Any] = {}

    def hand_over(sig: int, frame: FrameType | None) -> None:
        previous = handed_over[sig]
        if callable(previous):
            previous(sig, frame)

    def on_signal(sig: int, frame: FrameType | None) -> None:
        if draining.is_set():
            # A SIGTERM may come twice (from a supervisor and to the whole process group);
            # a second Ctrl-C means "now", as it does to uvicorn.
            if sig == signal.SIGINT:
                hand_over(sig, frame)
            return
        logger.warning(
            "%s received: readiness fails now; closing the listener in %g s",
            signal.Signals(sig).name,
            seconds,
        )
        # A signal handler runs between two bytecodes of the loop's own thread: only the
        # thread-safe entry point may touch the loop from here.
        loop.call_soon_threadsafe(_start_draining, loop, draining, seconds, hand_over, sig, frame)

    for sig in SIGNALS:
        handed_over[sig] = signal.signal(sig, on_signal)
    try:
        yield
    finally:
        for sig, previous in handed_over.items():
            if signal.getsignal(sig) is on_signal:
                signal.signal(sig, previous)


def _start_draining(
    loop: asyncio.AbstractEventLoop,
    draining: asyncio.Event,
    seconds: float,
    hand_over: Callable[[int, FrameType | None], None],
    sig: int,
    frame: FrameType | None,
) -> None:
    if draining.is_set():
        return
    draining.set()
    loop.call_later(seconds, hand_over, sig, frame)
