"""Ordered connections between simulated processes, and a selector over them.

A connection is a pair of :class:`Endpoint` objects, one per side, each direction a FIFO
pipe (like TCP). Sending never blocks. A network made with ``delay > 0`` turns every
send into a fault decision: option 1 holds that message (and, to keep FIFO order,
everything sent after it on the same direction) back for ``delay`` seconds of virtual
time. Closing an endpoint delivers EOF to the peer after the data already sent.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from ..control import annotate, choose


class ConnectionClosed(EOFError):
    """The connection is closed: EOF from the peer, or this side was closed."""


_EOF = object()


class _Pipe:
    """One direction of a connection: messages with the time each becomes readable."""

    __slots__ = ("cond", "items", "reader_closed", "selectors")

    def __init__(self) -> None:
        self.cond = threading.Condition(threading.Lock())
        self.items: deque[tuple[float, Any]] = deque()
        self.reader_closed = False
        self.selectors: list[Selector] = []

    def push(self, visible_at: float, item: Any) -> None:
        if self.items:
            visible_at = max(visible_at, self.items[-1][0])  # FIFO: never overtake
        with self.cond:
            self.items.append((visible_at, item))
            self.cond.notify_all()
        for selector in list(self.selectors):
            selector._notify()

    def ready(self, now: float) -> bool:
        return bool(self.items) and self.items[0][0] <= now

    def next_visible(self) -> float | None:
        return self.items[0][0] if self.items else None


class Endpoint:
    """One side of a connection: ``send``, ``recv``, ``readable``, ``close``."""

    def __init__(self, network: Network, name: str, inbox: _Pipe, outbox: _Pipe) -> None:
        self.network = network
        self.name = name  # "<this side>-><peer>"
        self._inbox = inbox
        self._outbox = outbox
        self.closed = False

    def send(self, message: Any) -> None:
        """Queue ``message`` for the peer (never blocks; the object itself is passed on).

        Raises :class:`ConnectionClosed` if this side is closed. Messages sent after the
        peer closed its side are discarded, as a TCP peer would drop them.
        """
        if self.closed:
            raise ConnectionClosed(f"{self.name}: send on a closed connection")
        msg_id = self.network._next_id()
        if self._outbox.reader_closed:
            annotate("drop", msg=msg_id)
            return
        annotate("send", msg=msg_id, to=self.name.split("->")[1], what=_short(message))
        self._outbox.push(time.monotonic() + self.network._delay_for(self.name), (msg_id, message))

    def recv(self, timeout: float | None = None) -> Any:
        """The next message, waiting up to ``timeout`` seconds (None: for ever).

        Raises :class:`ConnectionClosed` at EOF (after every message sent before the
        peer closed) or if this side is closed, even while waiting; ``TimeoutError`` when
        the time is up.
        """
        pipe = self._inbox
        deadline = None if timeout is None else time.monotonic() + timeout
        with pipe.cond:
            while True:
                if self.closed:
                    raise ConnectionClosed(f"{self.name}: connection closed locally")
                now = time.monotonic()
                if pipe.ready(now):
                    _, item = pipe.items.popleft()
                    if item is _EOF:
                        pipe.items.appendleft((now, _EOF))  # EOF stays: every later recv sees it
                        raise ConnectionClosed(f"{self.name}: EOF (the peer closed the connection)")
                    msg_id, message = item
                    annotate("recv", msg=msg_id)
                    return message
                if deadline is not None and now >= deadline:
                    raise TimeoutError(f"{self.name}: no message within {timeout:g}s")
                wait = _earliest(deadline, pipe.next_visible())
                pipe.cond.wait(None if wait is None else max(wait - now, 0.0))

    def readable(self) -> bool:
        """A message or EOF can be received now without waiting."""
        return self.closed or self._inbox.ready(time.monotonic())

    def close(self) -> None:
        """Close this side: the peer reads EOF after the data already sent; idempotent."""
        if self.closed:
            return
        self.closed = True
        self._inbox.reader_closed = True
        with self._inbox.cond:
            self._inbox.cond.notify_all()  # a thread blocked in our recv sees the close
        for selector in list(self._inbox.selectors):
            selector._notify()
        self._outbox.push(time.monotonic(), _EOF)

    def __repr__(self) -> str:
        return f"<Endpoint {self.name}{' closed' if self.closed else ''}>"


def _earliest(*times: float | None) -> float | None:
    known = [t for t in times if t is not None]
    return min(known) if known else None


class Selector:
    """Waits until one of several endpoints is readable, like a ``select`` loop."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._woken = False

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def wakeup(self) -> None:
        """Make the current (or the next) ``select`` return at once."""
        with self._cond:
            self._woken = True
            self._cond.notify_all()

    def select(self, endpoints: Iterable[Endpoint], timeout: float | None = None) -> list[Endpoint]:
        """The readable endpoints among ``endpoints``, in the order given.

        Waits until at least one is readable, :meth:`wakeup` is called, or ``timeout``
        seconds pass (then the list may be empty).
        """
        endpoints = list(endpoints)
        pipes = [ep._inbox for ep in endpoints]
        for pipe in pipes:
            pipe.selectors.append(self)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            with self._cond:
                while True:
                    ready = [ep for ep in endpoints if ep.readable()]
                    now = time.monotonic()
                    if ready or self._woken or (deadline is not None and now >= deadline):
                        self._woken = False
                        return ready
                    wait = _earliest(deadline, *(p.next_visible() for p in pipes))
                    self._cond.wait(None if wait is None else max(wait - now, 0.0))
        finally:
            for pipe in pipes:
                pipe.selectors.remove(self)


class Network:
    """Makes connections; ``delay > 0`` lets the search delay any message by that much."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self._sent = 0

    def _next_id(self) -> int:
        self._sent += 1
        return self._sent

    def connect(self, a: Any, b: Any) -> tuple[Endpoint, Endpoint]:
        """A connection between ``a`` and ``b`` (names, or :class:`~interleave.sim.Node`\\ s).

        Returns ``(a's endpoint, b's endpoint)``. A node's endpoints are closed when it
        crashes.
        """
        a_to_b, b_to_a = _Pipe(), _Pipe()
        name_a, name_b = _name(a), _name(b)
        end_a = Endpoint(self, f"{name_a}->{name_b}", inbox=b_to_a, outbox=a_to_b)
        end_b = Endpoint(self, f"{name_b}->{name_a}", inbox=a_to_b, outbox=b_to_a)
        for owner, end in ((a, end_a), (b, end_b)):
            adopt = getattr(owner, "adopt", None)
            if adopt is not None:
                adopt(end)
        return end_a, end_b

    def _delay_for(self, label: str) -> float:
        if self.delay <= 0:
            return 0.0
        return self.delay if choose(f"delay {label}") else 0.0


def _short(message: Any) -> str:
    text = str(message)
    return text if len(text) <= 40 else text[:37] + "..."


def _name(owner: Any) -> str:
    return owner if isinstance(owner, str) else owner.name
