"""Building blocks for simulated distributed systems, so a target reads like what it ports.

Everything here is ordinary ``threading``/``time`` code plus the fault hooks of
:mod:`interleave.control`, so it runs under the scheduler like the program itself.
Being inside the interleave package, it has no line switch points of its own: each
call is atomic up to the point where it blocks. Put the logic under test in the
target's own file, where every line is a switch point.

Faults are fault decisions (``interleave.choose``): 0 = no fault in the default
schedule, explored, counted against ``max_faults`` (a target sets it in
``__interleave__``; ``--max-faults`` overrides), shrunk and replayed like preemptions.
Outside a run no fault ever happens. For the HTML timeline, a node's threads are put in
the node's group, and sends, receives, drops, restarts and fsync stalls are annotated
(see :mod:`interleave.control`).

API (stable: other targets build on it)::

    net = Network(delay=0.0)            # delay > 0: every send may be delayed that long (a fault)
    a, b = net.connect(x, y)            # x, y: names or Nodes; a is x's side, b is y's side
    a.send(msg)                         # FIFO per direction, never blocks; ConnectionClosed if a is closed
    b.recv(timeout=None)                # next message; ConnectionClosed at EOF; TimeoutError
    b.readable(); a.close()             # close: the peer reads EOF after the data sent before

    sel = Selector()
    sel.select([ep, ...], timeout=None) # readable endpoints (waits for one, a wakeup or the timeout)
    sel.wakeup()                        # the current or next select returns at once

    node = Node("follower", disk=None)  # a process; its Disk outlives crashes
    node.thread(fn, *args, name=None)   # start a daemon thread of the node, named "NODE.NAME"
    node.crash()                        # stop all its threads, close its endpoints, lose unsynced data
    node.crash_point("label")           # fault decision: crash here
    node.pause(seconds)                 # from a controller thread: freeze the node while time passes
    node.pause_point("label", seconds)  # fault decision, from the node's own thread: pause here
    node.restart(main, *args)           # new incarnation after a crash, same disk

    disk = Disk("name", stall=0.0)      # stall > 0: every fsync may take that long (a fault)
    disk.append(rec); disk.write(k, v); disk.read(k); disk.log(); disk.synced()
    disk.fsync()                        # durable from here on; a crash drops what no fsync covered
"""

from __future__ import annotations

from .disk import Disk
from .net import ConnectionClosed, Endpoint, Network, Selector
from .node import Node

__all__ = ["Network", "Endpoint", "Selector", "ConnectionClosed", "Node", "Disk"]
