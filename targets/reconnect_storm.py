"""ZOOKEEPER-801: after a server pause, 1,000 clients reconnecting without backoff never recover.

Seed: /work/shared/seeds/004 (the ZOOKEEPER-801 post-mortem, 3.3.0); spec: zk-targets.md
section E. A metastable failure: a pause longer than the clients' read timeout makes every
client reconnect at once; the handshakes queue up behind each other, the queue wait grows
past the clients' timeout, clients give up and reconnect, and the server spends all its time
on handshakes for clients that have already left. Nothing returns it to health.

The model: one server thread works through a FIFO queue of handshakes, HANDSHAKE_COST of
virtual time each (creating a session is a quorum txn), whether or not the client is still
waiting (3.3 does the session work before it notices the client has closed). Every queued
connection and every session holds a file descriptor; past FD_LIMIT a connect is never
accepted and the client notices at its connect timeout. 1,000 clients (session timeout 10 s,
read timeout 2/3 of it, connect timeout 1/3, as in the C client) come up over RAMP seconds.

Clients are not one thread each: four driver threads each run 250 clients as timed events
(connect, handshake deadline, connect timeout, read timeout) on a heap, sleeping in virtual
time until the next one. Clients share nothing but the server, so a thread per client would
multiply switch points and thread wake-ups without adding interleavings that matter; as it
is, a run takes about a second. Pings are not simulated one by one: while the server runs
every ping is answered, so when it stops (``server_paused``) each client's read timer is
armed from its last answered ping, given by a fixed per-client phase.

The constants put the failed state past the server's capacity: without backoff each client
tries again every READ_TIMEOUT + RETRY_DELAY (7.7 s), 130 handshakes/s against the
server's 100/s, and the fd table lets the queue hold up to 12 s of work, far past the
clients' 6.7 s patience. Measured: ``main`` stays at 149 sessions for good after a pause;
``fixed`` has all 1,000 back 22 s after the pause ends (see the picture in docs/).

The fault is the pause (a long GC): the environment offers it once a second in a window
after the fleet is up, as an ``interleave.choose`` decision; a pause lasts PAUSE seconds.

Variants: ``main`` reconnects RETRY_DELAY after every failure (no growth, no jitter: the
3.3 Java client's 1 s between attempts, without its random part); ``fixed`` waits
U(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**k)) after its k-th failure in a row (capped
exponential backoff with full jitter, from a seeded random.Random).

Invariant E1, checked as code that raises ``NoRecovery``: every client holds a session
three session timeouts after the pause ends. E2 (open fds never exceed FD_LIMIT) holds by
construction. ``plot_reconnect_storm.py`` draws both variants from this model's own samples.
"""

from __future__ import annotations

import heapq
import random
import threading
import time
from collections import deque
from typing import Callable

import interleave

__interleave__ = {"max_steps": 1_000_000, "max_pauses": 0, "max_faults": 1}

CLIENTS = 1000
DRIVERS = 4
SESSION_TIMEOUT = 10.0
READ_TIMEOUT = SESSION_TIMEOUT * 2 / 3  # no answer for this long: the connection is dead
CONNECT_TIMEOUT = SESSION_TIMEOUT / 3  # a connect that is never accepted fails after this
PING_INTERVAL = SESSION_TIMEOUT / 3
HANDSHAKE_COST = 0.010  # server time per handshake, live or abandoned
FD_LIMIT = 1200
RAMP = 40.0  # the fleet starts connecting over this many seconds
PAUSE_WINDOW = (50, 60)  # seconds at which the environment may pause the server
PAUSE = 10.0
RECOVERY_BOUND = 3 * SESSION_TIMEOUT
RETRY_DELAY = 1.0  # main: fixed delay after a failure
BACKOFF_BASE = 4.0  # fixed: full jitter over [0, min(cap, base * 2**k)]
BACKOFF_CAP = 12.0
SEED = 801
EPSILON = 1e-9

IDLE, CONNECTING, CONNECTED = 0, 1, 2


class NoRecovery(Exception):
    """Some clients still had no session three session timeouts after the pause ended."""


class Server:
    """The handshake queue, the fd table, and the thread that works through the queue."""

    def __init__(self, state: list[int], attempt: list[int], failures: list[int]) -> None:
        self.state = state
        self.attempt = attempt
        self.failures = failures
        self.queue: deque[tuple[int, int, float]] = deque()  # (client, attempt, client's deadline)
        self.work = threading.Condition()
        self.connected = 0
        self.wasted = 0  # handshakes done for clients that had already given up
        self.paused = False
        # What the clients and the server learn of each other (a handshake done, a client
        # given up, a session dropped) crosses the network: one message at a time.
        self.sessions = threading.Lock()
        self.thread = threading.Thread(target=self.serve, name="server", daemon=True)

    def fds_full(self) -> bool:
        """(With ``sessions`` held.)"""
        with self.work:
            return len(self.queue) + self.connected >= FD_LIMIT

    def enqueue(self, client: int, attempt: int, deadline: float) -> None:
        with self.work:
            self.queue.append((client, attempt, deadline))
            self.work.notify()

    def serve(self) -> None:
        queue, state, attempt = self.queue, self.state, self.attempt
        while True:
            with self.work:
                while not queue:
                    self.work.wait()
                client, number, deadline = queue.popleft()
            time.sleep(HANDSHAKE_COST)
            with self.sessions:
                if state[client] == CONNECTING and attempt[client] == number and time.monotonic() <= deadline:
                    state[client] = CONNECTED
                    self.connected += 1
                    self.failures[client] = 0
                else:
                    self.wasted += 1


class Driver:
    """One thread running many clients as timed events."""

    def __init__(self, storm: Storm, index: int, clients: range) -> None:
        self.storm = storm
        self.server = storm.server
        self.clients = clients
        self.events: list[tuple[float, int, Callable[[int, int, float], None], int, int]] = []
        self.seq = 0
        self.wake = threading.Condition()
        self.rng = random.Random(SEED * 100 + index)
        self.thread = threading.Thread(target=self.run, name=f"clients-{index}", daemon=True)
        for c in clients:
            self.at(storm.start + c * RAMP / CLIENTS, self.connect, c)

    def at(self, when: float, handler: Callable[[int, int, float], None], client: int, number: int = 0) -> None:
        self.seq += 1
        heapq.heappush(self.events, (when, self.seq, handler, client, number))

    def run(self) -> None:
        events = self.events
        while True:
            with self.wake:
                # (EPSILON: a float sum may leave a residue below the clock's resolution)
                while not events or events[0][0] - time.monotonic() > EPSILON:
                    self.wake.wait(events[0][0] - time.monotonic() if events else None)
                when, _, handler, client, number = heapq.heappop(events)
                with self.server.sessions:
                    handler(client, number, when)

    def server_paused(self, since: float) -> None:
        """Arm each connected client's read timer from its last answered ping (called at the pause)."""
        with self.wake, self.server.sessions:
            state = self.storm.state
            for c in self.clients:
                if state[c] == CONNECTED:
                    phase = (c * 0.6180339887) % 1.0 * PING_INTERVAL
                    last_answered = since - (since - self.storm.start - phase) % PING_INTERVAL
                    self.at(last_answered + READ_TIMEOUT, self.read_timeout, c)
            self.wake.notify()

    # --------------------------------------------------------------- client events

    def connect(self, c: int, _: int, now: float) -> None:
        storm, server = self.storm, self.server
        if storm.state[c] != IDLE:
            return
        if server.fds_full():
            self.at(now + CONNECT_TIMEOUT, self.retry, c)  # never accepted: the connect times out
            return
        storm.attempt[c] += 1
        storm.state[c] = CONNECTING
        server.enqueue(c, storm.attempt[c], now + READ_TIMEOUT)
        self.at(now + READ_TIMEOUT, self.handshake_deadline, c, storm.attempt[c])

    def handshake_deadline(self, c: int, number: int, now: float) -> None:
        storm = self.storm
        if storm.state[c] == CONNECTING and storm.attempt[c] == number:
            storm.state[c] = IDLE  # gives up; the server will still do this handshake
            self.retry(c, 0, now)

    def read_timeout(self, c: int, _: int, now: float) -> None:
        storm = self.storm
        if storm.state[c] == CONNECTED and self.server.paused:
            storm.state[c] = IDLE
            self.server.connected -= 1
            self.retry(c, 0, now)

    def retry(self, c: int, _: int, now: float) -> None:
        failures = self.storm.failures
        failures[c] += 1
        if self.storm.backoff:
            delay = self.rng.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (failures[c] - 1)))
        else:
            delay = RETRY_DELAY
        self.at(now + delay, self.connect, c)


class Storm:
    """The fleet, the server, and the samples of sessions held over time."""

    def __init__(self, backoff: bool) -> None:
        self.backoff = backoff
        self.start = time.monotonic()
        self.state = [IDLE] * CLIENTS
        self.attempt = [0] * CLIENTS
        self.failures = [0] * CLIENTS
        self.server = Server(self.state, self.attempt, self.failures)
        per_driver = CLIENTS // DRIVERS
        self.drivers = [Driver(self, i, range(i * per_driver, (i + 1) * per_driver)) for i in range(DRIVERS)]
        self.samples: list[tuple[float, int]] = []  # (seconds since the start, sessions held)

    def sample(self) -> None:
        with self.server.sessions:
            self.samples.append((time.monotonic() - self.start, self.server.connected))


def simulate(backoff: bool, pause_at: float | None = None, until: float | None = None) -> Storm:
    """Run the fleet; pause the server at ``pause_at`` (None: a fault decision in PAUSE_WINDOW).

    With ``until`` (seconds) the run just records samples up to then; otherwise it checks E1
    and stops three session timeouts after the pause ends (or at the window's end, unpaused).
    """
    storm = Storm(backoff)
    server = storm.server
    server.thread.start()
    for driver in storm.drivers:
        driver.thread.start()
    resume_at = None
    second = 0
    while True:
        second += 1
        time.sleep(storm.start + second - time.monotonic())
        storm.sample()
        if resume_at is None and (second == pause_at or (
                pause_at is None and PAUSE_WINDOW[0] <= second < PAUSE_WINDOW[1]
                and interleave.choose("pause the server (a long GC)"))):
            with server.sessions:
                server.paused = True
            interleave.freeze([server.thread])
            for driver in storm.drivers:
                driver.server_paused(time.monotonic())
            resume_at = second + PAUSE
        elif second == resume_at:
            with server.sessions:
                server.paused = False
            interleave.unfreeze([server.thread])
        if until is not None:
            if second >= until:
                return storm
        elif resume_at is not None and second >= resume_at + RECOVERY_BOUND:
            with server.sessions, server.work:
                recovered, queued, wasted = server.connected, len(server.queue), server.wasted
            if recovered < CLIENTS:
                raise NoRecovery(
                    f"{CLIENTS - recovered} of {CLIENTS} clients still have no session "
                    f"{RECOVERY_BOUND:g}s after a {PAUSE:g}s server pause ended; {queued} "
                    f"handshakes queued, {wasted} done for clients that had given up"
                )
            return storm
        elif resume_at is None and second >= PAUSE_WINDOW[1]:
            return storm


def main() -> None:
    """Clients reconnect after a fixed delay: the storm never ends."""
    simulate(backoff=False)


def fixed() -> None:
    """Capped exponential backoff with full jitter: the fleet is back within three session timeouts."""
    simulate(backoff=True)
