"""Simulated processes: a named group of threads that can crash, pause and restart.

Crashing a node stops all its threads wherever they are (they never run again), closes
its connections (peers read EOF) and drops its disk's un-fsynced data; what survives is
the :class:`~interleave.sim.Disk`. A restart runs a fresh incarnation from that disk.
Pausing a node freezes all its threads while the others run and virtual time passes
(a GC pause, a stopped VM). Every fault can be a fault decision of the search.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from .. import control
from .disk import Disk
from .net import Endpoint


class Node:
    """A process: its threads, its connections and its disk."""

    def __init__(self, name: str, disk: Disk | None = None) -> None:
        self.name = name
        self.disk = disk if disk is not None else Disk(name)
        self.incarnation = 1
        self.crashed = False
        self.paused = False
        self.threads: list[threading.Thread] = []
        self.endpoints: list[Endpoint] = []

    def thread(self, target: Callable[..., Any], *args: Any, name: str | None = None) -> threading.Thread:
        """Start ``target(*args)`` as a (daemon) thread of this node and return it."""
        t = threading.Thread(target=self._run, args=(target, args), name=f"{self.name}.{name or target.__name__}",
                             daemon=True)
        self.threads.append(t)
        t.start()
        return t

    def _run(self, target: Callable[..., Any], args: tuple[Any, ...]) -> None:
        control.set_group(self.name)  # the HTML timeline draws a node's threads side by side
        target(*args)

    def adopt(self, endpoint: Endpoint) -> None:
        """Make ``endpoint`` part of this process (closed when it crashes)."""
        self.endpoints.append(endpoint)

    # ------------------------------------------------------------------ crash

    def crash(self) -> None:
        """Crash now: threads stopped for good, connections closed, unsynced data lost.

        May be called from any thread, including one of this node's (then it does not
        return). Needs an interleave run.
        """
        _require_run("crash")
        if self.crashed:
            return
        self.crashed = True
        for endpoint in self.endpoints:
            endpoint.close()
        self.disk.lose_unsynced()
        control.crash(self.threads)

    def crash_point(self, label: str) -> None:
        """A fault decision: the search may crash this node right here."""
        if not self.crashed and control.choose(f"crash {self.name}: {label}"):
            self.crash()

    def restart(self, main: Callable[..., Any], *args: Any) -> threading.Thread:
        """Start a new incarnation (after a crash) running ``main(*args)`` on the same disk."""
        if not self.crashed:
            raise RuntimeError(f"{self.name} is running: crash it before restarting it")
        self.crashed = False
        self.paused = False
        self.incarnation += 1
        self.threads = []
        self.endpoints = []
        control.annotate("restart", node=self.name)
        return self.thread(main, *args, name="main")

    # ------------------------------------------------------------------ pause

    def pause(self, seconds: float) -> None:
        """Freeze every thread of this node for ``seconds`` of virtual time.

        Call it from a thread outside the node (a controller); it returns after the
        node has been resumed. Needs an interleave run.
        """
        _require_run("pause")
        self._freeze()
        time.sleep(seconds)
        self._unfreeze()

    def pause_point(self, label: str, seconds: float) -> bool:
        """A fault decision: the search may pause this whole node here for ``seconds``.

        Call it from one of the node's own threads; True if the pause happened (the
        call returns once the node runs again).
        """
        if self.crashed or not control.choose(f"pause {self.name}: {label}"):
            return False
        resumer = threading.Thread(target=self._resume_after, args=(seconds,), name=f"{self.name}-resumer", daemon=True)
        resumer.start()
        self._freeze()
        return True

    def _resume_after(self, seconds: float) -> None:
        time.sleep(seconds)
        self._unfreeze()

    def _freeze(self) -> None:
        self.paused = True
        control.freeze(self.threads)

    def _unfreeze(self) -> None:
        if self.paused:
            self.paused = False
            control.unfreeze(self.threads)

    def __repr__(self) -> str:
        state = "crashed" if self.crashed else "paused" if self.paused else "up"
        return f"<Node {self.name} #{self.incarnation} {state}>"


def _require_run(what: str) -> None:
    if not control.controlled():
        raise RuntimeError(f"Node.{what} needs an interleave run (it stops threads the scheduler controls)")
