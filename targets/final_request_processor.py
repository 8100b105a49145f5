"""A stalled fsync gets a follower dropped, and its CommitProcessor touches a cancelled key.

ZOOKEEPER-2044 (CancelledKeyException in 3.4.x, fixed in 3.4.10), with the drop of a
lagging follower added by ZOOKEEPER-87; seed document 001 (a five-node ensemble whose
follower logs "fsync-ing the write ahead log in SyncThread:1 took 30334ms", then
"Exception when following the leader" and CommitProcessor ERRORs).

Three servers: a leader and followers F1, F2 (a follower's disk may stall an fsync: a
fault decision). A client on F1 writes every half tick; F1 forwards each write to the
leader, which proposes it, commits it on a quorum of ACKs (its own and one follower's)
and sends COMMIT; F1's CommitProcessor answers the client (FinalRequestProcessor ->
sendResponse -> sendBuffer), even while its own fsync is pending.

If F1's SyncThread stalls longer than syncLimit ticks, the leader's ping finds F1's
oldest proposal un-ACKed and closes F1's socket. F1's QuorumPeer reads EOF and shuts
down: ``close_all`` cancels every client key first, then the processors are stopped.
Applying a txn takes the CommitProcessor ``APPLY_SECONDS``, so the ping that drops F1
falls due while it is still answering a write; in the default order (round robin, the
leader's threads made first) the leader, then F1's QuorumPeer run before it. It then
reaches ``send_buffer``, whose first step reads the key's interest set:
CancelledKeyException (3.4.9 logs it as "Unexpected Exception"; here it escapes the
thread, so the run fails where the key is touched). One fault, no preemption.
3.4.10's ``is_valid()`` check makes that order safe; it still fails if the
CommitProcessor runs first (a free choice) and is preempted between the check and
``interest_ops()``: one fault, one preemption.

Variants:
  * ``main``: 3.4.9, ``send_buffer`` reads the key from the CommitProcessor thread.
  * ``v3_4_10``: checks ``key.is_valid()`` first; narrows the window, does not close it.
  * ``fixed``: the 3.5 design: ``send_buffer`` only queues, and only the selector thread
    touches keys (it applies queued writes and closes); a cancelled key is never read.

Invariants:
  * B1: no thread touches a key after it was cancelled (CancelledKeyException).
  * B2: a stall of a minority (one follower) never stops writes: the leader commits
    every proposal within syncLimit ticks (``QuorumLost`` otherwise). With
    ``--max-faults 2`` both followers may stall, and B2 fails as it should.
"""
import queue
import threading
import time

from interleave.sim import ConnectionClosed, Disk, Network, Node, Selector

__interleave__ = {"max_faults": 1, "max_pauses": 0}  # one stalled fsync is the fault of the seed

TICK = 1.0
SYNC_LIMIT = 2  # ticks a proposal may stay un-ACKed before the leader drops the follower
STALL = 5.0  # seconds a stalled fsync takes: more than SYNC_LIMIT * TICK
WRITES = 6
WRITE_INTERVAL = TICK / 2
APPLY_SECONDS = TICK / 4  # the CommitProcessor is still answering when a ping falls due
READ, WRITE = 1, 4


class CancelledKeyException(Exception):
    """A selection key was used after ``cancel()``."""


class QuorumLost(Exception):
    """The leader could not commit a proposal within syncLimit ticks."""


class SelectionKey:
    def __init__(self):
        self.valid = True
        self.ops = READ

    def is_valid(self):
        return self.valid

    def interest_ops(self):
        if not self.valid:
            raise CancelledKeyException("interestOps() on a cancelled key")
        return self.ops

    def cancel(self):
        self.valid = False


# ------------------------------------------------------------------------- leader


class LearnerHandler:
    def __init__(self, name, endpoint):
        self.name = name
        self.endpoint = endpoint
        self.unacked = {}  # zxid -> time the PROPOSAL was sent (SyncLimitCheck)


class Leader:
    def __init__(self):
        self.handlers = []
        self.zxid = 0
        self.acks = {}  # zxid -> followers that ACKed; removed once committed
        self.proposed_at = {}
        self.lock = threading.Lock()  # propose and processAck are synchronized on the leader

    def learner_handler(self, handler):
        """Reads one follower's packets: forwarded requests and ACKs."""
        while True:
            try:
                kind, payload = handler.endpoint.recv()
            except ConnectionClosed:
                return
            if kind == "REQUEST":
                self.propose(payload)
            else:
                handler.unacked.pop(payload, None)
                self.ack(handler.name, payload)

    def propose(self, request):
        with self.lock:
            self.zxid += 1
            self.acks[self.zxid] = set()
            self.proposed_at[self.zxid] = time.monotonic()
            for handler in list(self.handlers):
                handler.unacked[self.zxid] = time.monotonic()
                handler.endpoint.send(("PROPOSAL", (self.zxid, request)))

    def ack(self, follower, zxid):
        with self.lock:
            if zxid not in self.acks:
                return  # committed already
            self.acks[zxid].add(follower)
            if len(self.acks[zxid]) + 1 >= 2:  # with the leader's own ACK: a quorum of 3
                del self.acks[zxid]
                for handler in list(self.handlers):
                    handler.endpoint.send(("COMMIT", zxid))

    def lead(self):
        """Pings every follower each half tick; drops those past syncLimit."""
        time.sleep(TICK / 4)  # pings fall between the client's writes
        while True:
            time.sleep(TICK / 2)
            now = time.monotonic()
            with self.lock:
                for handler in list(self.handlers):
                    if handler.unacked and now - min(handler.unacked.values()) > SYNC_LIMIT * TICK:
                        # "Closing connection to peer due to transaction timeout."
                        self.handlers.remove(handler)
                        handler.endpoint.close()
                for zxid in self.acks:
                    if now - self.proposed_at[zxid] > SYNC_LIMIT * TICK:
                        raise QuorumLost(f"proposal {zxid} not committed after {SYNC_LIMIT} ticks: writes stopped")


# ----------------------------------------------------------------------- follower


class ClientConnection:
    """NIOServerCnxn on the follower."""

    def __init__(self, endpoint):
        self.endpoint = endpoint
        self.key = SelectionKey()
        self.outgoing = queue.SimpleQueue()  # fixed design only: outgoingBuffers, for the selector


class Follower:
    def __init__(self, node, leader_endpoint, selector_owns_keys, check_valid, serves_clients):
        self.node = node
        self.leader = leader_endpoint
        self.selector_owns_keys = selector_owns_keys
        self.check_valid = check_valid
        self.clients = []  # the factory's cnxns: a set read and changed under synchronized (cnxns)
        self.clients_lock = threading.Lock()
        self.serves_clients = serves_clients
        self.selector = Selector()
        self.closing = False  # volatile
        self.syncing = queue.SimpleQueue()
        self.committing = queue.SimpleQueue()
        self.proposals = {}  # zxid -> request, until committed
        self.sync = node.thread(self.sync_thread, name="SyncThread")
        node.thread(self.quorum_peer, name="QuorumPeer")
        if serves_clients:  # the other follower only logs and ACKs: fewer threads to schedule
            node.thread(self.commit_processor, name="CommitProcessor")
            node.thread(self.nio_factory, name="NIOServerCnxnFactory")

    def accept(self, endpoint):
        with self.clients_lock:
            self.clients.append(ClientConnection(endpoint))
        self.selector.wakeup()

    def connections(self):
        with self.clients_lock:  # a copy, as closeAll() clones cnxns
            return list(self.clients)

    def quorum_peer(self):
        """Follower.followLeader: PROPOSAL to the SyncThread, COMMIT to the CommitProcessor."""
        while True:
            try:
                kind, payload = self.leader.recv()
            except ConnectionClosed:  # "Exception when following the leader"
                self.shutdown()
                return
            if kind == "PROPOSAL":
                zxid, request = payload
                self.proposals[zxid] = request
                self.syncing.put(zxid)
            elif self.serves_clients:
                self.committing.put(payload)

    def shutdown(self):
        """Learner.shutdown: closeAll() first, then zk.shutdown() stops the processors."""
        self.close_all()
        self.committing.put(None)
        self.syncing.put(None)
        self.sync.join()  # syncProcessor.shutdown() waits for the stalled fsync

    def close_all(self):
        if self.selector_owns_keys:
            self.closing = True  # interleave: racy (a volatile write: the selector cancels the keys itself)
            self.selector.wakeup()
            return
        for cnxn in self.connections():
            cnxn.key.cancel()
            cnxn.endpoint.close()

    def sync_thread(self):
        """SyncRequestProcessor + SendAckRequestProcessor."""
        while True:
            zxid = self.syncing.get()
            if zxid is None:
                return
            self.node.disk.append(zxid)
            self.node.disk.fsync()
            try:
                self.leader.send(("ACK", zxid))
            except ConnectionClosed:
                pass  # "Closing connection to leader, exception during packet send"

    def commit_processor(self):
        """CommitProcessor -> FinalRequestProcessor: answer the client that sent the write."""
        while True:
            zxid = self.committing.get()
            if zxid is None:
                return
            time.sleep(APPLY_SECONDS)  # applying the txn and serializing the response take CPU
            origin, xid = self.proposals.pop(zxid)
            for cnxn in self.connections():
                if cnxn.endpoint.name == origin:
                    self.send_buffer(cnxn, ("OK", xid))

    def send_buffer(self, cnxn, response):
        if self.selector_owns_keys:
            cnxn.outgoing.put(response)  # 3.5: queue it; the selector writes it
            self.selector.wakeup()
        elif not self.check_valid or cnxn.key.is_valid():  # 3.4.10 adds the isValid() check
            if cnxn.key.interest_ops() & WRITE == 0:  # nothing queued: write directly
                try:
                    cnxn.endpoint.send(response)
                except ConnectionClosed:
                    pass  # sock.write's IOException on a closed channel: "best effort", ignored

    def nio_factory(self):
        """The selector thread: reads client requests and forwards them to the leader."""
        while True:
            clients = self.connections()
            readable = self.selector.select([c.endpoint for c in clients if c.key.is_valid()])
            for cnxn in clients:
                if cnxn.key.is_valid() and cnxn.endpoint in readable:
                    try:
                        xid = cnxn.endpoint.recv()
                    except ConnectionClosed:
                        continue  # doIO: closed meanwhile (close_all)
                    self.leader.send(("REQUEST", (cnxn.endpoint.name, xid)))
                if self.selector_owns_keys and cnxn.key.is_valid():
                    while not cnxn.outgoing.empty():
                        cnxn.endpoint.send(cnxn.outgoing.get())
                    if self.closing:  # interleave: racy (a volatile read)
                        cnxn.key.cancel()
                        cnxn.endpoint.close()


# ------------------------------------------------------------------------ the run


def client(endpoint):
    """Writes one znode every WRITE_INTERVAL, waiting for each answer."""
    start = time.monotonic()
    for xid in range(1, WRITES + 1):
        try:
            endpoint.send(xid)
            endpoint.recv()
        except ConnectionClosed:
            return  # ConnectionLoss: the follower shut down
        time.sleep(start + xid * WRITE_INTERVAL - time.monotonic())


def run(selector_owns_keys=False, check_valid=False):
    net = Network()
    leader_node = Node("leader")
    leader = Leader()
    nodes = [Node(name, Disk(name, stall=STALL)) for name in ("F1", "F2")]
    follower_ends = []
    for node in nodes:
        to_follower, to_leader = net.connect(leader_node, node)
        leader.handlers.append(LearnerHandler(node.name, to_follower))
        follower_ends.append(to_leader)
    # Leader threads first: in the default round-robin order the leader's ping then runs
    # before the follower's threads that are due at the same instant.
    for handler in leader.handlers:
        leader_node.thread(leader.learner_handler, handler, name=f"LearnerHandler-{handler.name}")
    leader_node.thread(leader.lead, name="lead")
    f1 = Follower(nodes[0], follower_ends[0], selector_owns_keys, check_valid, serves_clients=True)
    Follower(nodes[1], follower_ends[1], selector_owns_keys, check_valid, serves_clients=False)

    client_end, server_end = net.connect("client", nodes[0])
    f1.accept(server_end)
    client(client_end)
    time.sleep(SYNC_LIMIT * TICK)  # the leader pings on: B2 is checked for the last proposals


def main():
    """3.4.9: sendBuffer reads the key's interest set from the CommitProcessor thread."""
    run()


def v3_4_10():
    """3.4.10: isValid() before interestOps(): a smaller window, still open."""
    run(check_valid=True)


def fixed():
    """3.5 design: only the selector thread touches keys."""
    run(selector_owns_keys=True)


if __name__ == "__main__":
    main()
