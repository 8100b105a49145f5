"""ZooKeeper NIO throttling race: disableRecv after enableRecv (ZOOKEEPER-3072, seed 000).

A port of the 3.5.3 server's request path for two client connections. The selector
thread hands a readable connection to the I/O worker (no READ interest meanwhile). The
worker reads one packet and runs ``process_packet``: ``submit_request`` queues it for
the pipeline and counts it in the global ``in_process``, then
``incr_outstanding_requests`` counts it on the connection and throttles the connection
(clears READ interest) while more than ``LIMIT`` requests are in process anywhere. The
pipeline answers reads at once; writes wait for a (virtual) fsync. ``send_response``
uncounts the request and un-throttles the connection when it has none left.

The bug: if the pipeline answers C1's read between the worker's submit and its incr,
``enable_recv`` runs first (nothing to un-throttle), then ``disable_recv`` throttles C1
for good because C2's write keeps ``in_process`` above the limit. C1 has no request
outstanding, so no response will ever re-enable it: its next request is never read.

Variants: ``main`` = 3.5.3 order (submit, then incr); ``fixed`` = 3.6.0 order (incr,
then submit).

ZooKeeper's counters and flags are atomics (``AtomicInteger``, ``AtomicBoolean``): here a
counter's update and a flag's compare-and-set hold a lock, and a plain read or write of a
flag (a volatile access, atomic in Python too) is marked ``# interleave: racy``, so the
fixed variant has no data race.

Invariants, checked once the clients are done and every server thread is idle:
  * a throttled connection has an outstanding request (throttled => outstanding >= 1);
  * liveness: every connection has READ interest again (its next request will be read),
    and every request was answered within the client's read timeout.
"""
import queue
import threading
import time

from interleave.sim import Network, Selector

__interleave__ = {"max_pauses": 0, "max_faults": 0}  # a pure interleaving bug: no pauses, no faults

LIMIT = 0  # globalOutstandingLimit: throttle while any request is in process
FSYNC_SECONDS = 1.0  # keeps C2's write in the pipeline while C1's read goes through
READ_TIMEOUT = 4.0  # the client's 2/3 of a 6 s session timeout
READ = 1


class Packet:
    def __init__(self, xid, kind):
        self.xid = xid
        self.kind = kind  # "read" or "write"


class Connection:
    """NIOServerCnxn: the server side of one client connection."""

    def __init__(self, server, name, endpoint):
        self.server = server
        self.name = name
        self.endpoint = endpoint
        self.outstanding = 0
        self.throttled = False
        self.selectable = True
        self.outgoing = queue.SimpleQueue()  # outgoingBuffers, a LinkedBlockingQueue
        self.interest = READ  # the selection key's interest set: only the selector changes it
        self.atomics = threading.Lock()  # what the AtomicBoolean and AtomicInteger fields make atomic

    def interest_ops(self):
        return READ if self.selectable and not self.throttled else 0  # interleave: racy (volatile reads)

    def request_interest_update(self):
        if self.selectable:  # interleave: racy (a volatile read)
            self.server.add_interest_update(self)

    def compare_and_set_throttled(self, expect, update):
        with self.atomics:
            if self.throttled != expect:
                return False
            self.throttled = update
            return True

    def disable_recv(self):
        if self.compare_and_set_throttled(False, True):
            self.request_interest_update()

    def enable_recv(self):
        if self.compare_and_set_throttled(True, False):
            self.request_interest_update()

    def add_outstanding(self, delta):
        with self.atomics:
            self.outstanding += delta
            return self.outstanding

    def incr_outstanding_requests(self, packet):
        self.add_outstanding(1)
        if self.server.in_process > LIMIT:  # interleave: racy (AtomicInteger.get)
            self.disable_recv()

    def send_response(self, packet):
        self.outgoing.put(packet.xid)  # sendBuffer: the selector writes it out
        self.request_interest_update()
        if self.add_outstanding(-1) < 1 or self.server.in_process < LIMIT:  # interleave: racy (AtomicInteger.get)
            self.enable_recv()


class Server:
    def __init__(self, incr_first):
        self.incr_first = incr_first
        self.connections = {}  # endpoint -> Connection
        self.in_process = 0
        self.selector = Selector()
        # Connections whose interest set must be recomputed: a thread-safe queue, as ZooKeeper's
        # updateQueue (a LinkedBlockingQueue) is; a plain list swapped out loses an append.
        self.updates = queue.SimpleQueue()
        self.work = queue.SimpleQueue()
        self.submitted = queue.SimpleQueue()
        self.in_process_lock = threading.Lock()  # requestsInProcess is an AtomicInteger

    def add_in_process(self, delta):
        with self.in_process_lock:
            self.in_process += delta

    def add_interest_update(self, cnxn):
        self.updates.put(cnxn)
        self.selector.wakeup()

    def select_loop(self):
        """SelectorThread: hands readable connections to the worker, applies interest updates."""
        while True:
            for endpoint in self.selector.select([c.endpoint for c in self.connections.values() if c.interest & READ]):
                cnxn = self.connections[endpoint]
                cnxn.selectable = False  # handleIO: the worker owns it until doWork ends
                cnxn.interest = 0
                self.work.put(cnxn)
            while not self.updates.empty():  # processInterestOpsUpdateRequests: poll() until empty
                cnxn = self.updates.get()
                while not cnxn.outgoing.empty():  # writable: flush the responses
                    cnxn.endpoint.send(cnxn.outgoing.get())
                cnxn.interest = cnxn.interest_ops()

    def io_worker(self):
        """IOWorkRequest.doWork: read one packet, process it, give the connection back."""
        while True:
            cnxn = self.work.get()
            self.process_packet(cnxn, cnxn.endpoint.recv())
            cnxn.selectable = True  # interleave: racy (a volatile write)
            self.add_interest_update(cnxn)

    def process_packet(self, cnxn, packet):
        if self.incr_first:
            cnxn.incr_outstanding_requests(packet)
            self.submit_request(cnxn, packet)
        else:
            self.submit_request(cnxn, packet)
            cnxn.incr_outstanding_requests(packet)  # BUG: the response may already have been sent

    def submit_request(self, cnxn, packet):
        self.submitted.put((cnxn, packet))
        self.add_in_process(1)  # counted after the hand-off, as in 3.5.3

    def pipeline(self):
        """Prep/Sync/Commit: reads are answered at once, a write once its fsync is done."""
        syncing = []  # (fsync done at, connection, packet)
        while True:
            try:
                cnxn, packet = self.submitted.get(timeout=syncing[0][0] - time.monotonic() if syncing else None)
            except queue.Empty:
                self.finish(*syncing.pop(0)[1:])
                continue
            if packet.kind == "write":
                syncing.append((time.monotonic() + FSYNC_SECONDS, cnxn, packet))
            else:
                self.finish(cnxn, packet)

    def finish(self, cnxn, packet):
        """FinalRequestProcessor."""
        self.add_in_process(-1)
        cnxn.send_response(packet)


def await_response(endpoint, packet, unanswered):
    """The client library: wait for a response up to the read timeout."""
    try:
        endpoint.recv(timeout=READ_TIMEOUT)
    except TimeoutError:
        unanswered.append(f"{endpoint.name} xid {packet.xid}")


def run(incr_first):
    net = Network()
    server = Server(incr_first)
    c1, c1_server = net.connect("C1", "server")
    c2, c2_server = net.connect("C2", "server")
    server.connections = {c1_server: Connection(server, "C1", c1_server), c2_server: Connection(server, "C2", c2_server)}
    for loop in (server.select_loop, server.io_worker, server.pipeline):
        threading.Thread(target=loop, name=loop.__name__, daemon=True).start()

    # The two clients, driven from here: C1 reads while C2's write waits for its fsync.
    unanswered = []
    write, read = Packet(1, "write"), Packet(1, "read")
    c2.send(write)
    time.sleep(0.1)
    c1.send(read)
    await_response(c1, read, unanswered)
    await_response(c2, write, unanswered)
    time.sleep(READ_TIMEOUT)  # the clock moves only when every server thread is idle: quiescence
    # The checks read the server's state with no lock, as a test would once it is idle.
    for cnxn in server.connections.values():
        assert not (cnxn.throttled and cnxn.outstanding < 1), (  # interleave: racy
            f"{cnxn.name} is throttled with {cnxn.outstanding} outstanding requests: "
            f"no response will ever un-throttle it"
        )
        assert cnxn.interest & READ, (  # interleave: racy
            f"{cnxn.name} is idle without READ interest: its next request is never read")
    assert not unanswered, f"requests never answered: {unanswered}"


def main():
    """3.5.3: submitRequest, then incrOutstandingRequests."""
    run(incr_first=False)


def fixed():
    """3.6.0: incrOutstandingRequests, then submitRequest."""
    run(incr_first=True)


if __name__ == "__main__":
    main()
