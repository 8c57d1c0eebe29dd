"""Lame-duck shutdown: on SIGTERM, readiness fails at once while requests are still served.

uvicorn closes its listener as soon as it is signalled, so a connection that a load balancer
had already opened is reset under a request it sent meanwhile (HAProxy logs `SD--`), and a
POST cannot be retried. Here the first SIGTERM (or SIGINT) only marks the worker as draining:
`/health/ready` answers 503, the balancer takes the replica out, and only after
`APP_SHUTDOWN_LAME_DUCK_SECONDS` is the signal handed to uvicorn, which then closes the
listener and lets the requests in flight finish (`APP_SHUTDOWN_GRACE_SECONDS`). A second
SIGINT is handed over at once.

Closing a listener resets the connections the kernel has completed but nobody has accepted yet
(its accept queue), each with a request already sent on it: in the instant of the close, a
client that had just opened a new connection (as every answer told it to, with `Connection:
close`) lost a POST it could not know the fate of. So for the last `DRAIN_SECONDS` of the lame
duck the listener drops new connection attempts (a filter of one instruction on the socket: a
client's SYN goes unanswered, its retry finds nothing listening and fails to connect, having
sent nothing) while the worker goes on accepting and serving what is queued.
"""

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import stat
import struct
import sys
import threading
from collections.abc import Callable, Generator
from pathlib import Path
from types import FrameType
from typing import Any

logger = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)
# Where the app's lifespan state keeps the event that is set once the worker is draining.
DRAINING = "draining"
# How long before the listener closes it stops taking new connections (see above).
DRAIN_SECONDS = 0.5
# Linux's SO_ATTACH_FILTER (the socket module does not name it), and a classic BPF program of
# one instruction, BPF_RET|BPF_K 0: "keep 0 bytes", every packet dropped.
SO_ATTACH_FILTER = 26
DROP_EVERY_PACKET = struct.pack("HBBI", 0x06, 0, 0, 0)


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
    loop.call_later(max(seconds - DRAIN_SECONDS, 0), refuse_new_connections)
    loop.call_later(seconds, hand_over, sig, frame)


def refuse_new_connections() -> None:
    """Drop new connection attempts on each TCP socket this process listens on (uvicorn's, or
    the copy a worker inherited), leaving the connections already queued to be accepted."""
    if sys.platform != "linux":
        return
    filtered = 0
    for entry in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):  # the listing's own descriptor, closed by now
            fd = int(entry.name)
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            with socket.socket(fileno=os.dup(fd)) as sock:
                if _is_tcp_listener(sock):
                    drop_new_connections(sock)
                    filtered += 1
    if filtered:
        logger.info("the listener takes no new connections; it closes at the lame duck's end")


def drop_new_connections(listener: socket.socket) -> None:
    """Attach the drop-everything filter to `listener` (Linux): its accept queue is kept."""
    program = ctypes.create_string_buffer(DROP_EVERY_PACKET, len(DROP_EVERY_PACKET))
    # struct sock_fprog: the program's length in instructions, and a pointer to them.
    fprog = struct.pack("HP", 1, ctypes.addressof(program))
    listener.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def _is_tcp_listener(sock: socket.socket) -> bool:
    return (
        sock.type == socket.SOCK_STREAM
        and sock.family in (socket.AF_INET, socket.AF_INET6)
        and bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
    )
