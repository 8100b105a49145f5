"""A process pause longer than the session timeout: two clients believe they hold the lock.

Curator Tech Note 10 (seed document 002): "A session timeout of 3 seconds is used;
client A acquires an InterProcessMutex; client B waits for it; A's JVM stops for 10
seconds in GC; ZooKeeper deletes A's ephemeral lock node; B's watcher fires and B gains
the lock; after the GC A un-pauses: for a short period of time both A and B believe
they are the lock holder." A documented hazard of the recipe, with no JIRA fix.

One ZooKeeper server (a data tree with ephemeral sequential nodes and one-shot watches,
a session tracker that expires sessions on tick boundaries) and two client processes,
each with a SendThread (pings, read timeout, state changes), an EventThread (watches),
a ConnectionStateManager (state listeners) and an app thread running the lock recipe:
create ``/lock/lock-N`` (ephemeral sequential); the lowest sequence holds the lock;
the others watch their predecessor and wait. The lock holder writes to a shared
resource, passing its lock's sequence number as a token.

The fault: A's whole process pauses (every thread frozen while virtual time passes) for
``PAUSE`` seconds, a fault decision at each step of A's critical section.

Variants:
  * ``main``: the recipe as is: the lock is believed held until ``release()``.
  * ``with_listener``: a state listener marks the lock invalid on SUSPENDED or LOST and
    the app checks before each write. Narrower, still open: after the pause A's app
    thread may run before its SendThread notices the timeout.
  * ``fixed``: fencing: the resource rejects a token lower than one it accepted.

Invariant (resource safety): the resource never accepts a write whose token is lower
than one it accepted before, i.e. a stale lock holder never writes after the new one.
Liveness: B gets the lock once A's session has expired (else the run deadlocks).
"""
import math
import queue
import threading
import time

from interleave.sim import Network, Node, Selector

__interleave__ = {"max_faults": 1, "max_pauses": 0}  # one process pause is the fault of the note

TICK = 1.0
SESSION_TIMEOUT = 3.0
READ_TIMEOUT = SESSION_TIMEOUT * 2 / 3  # the client's "have not heard from server" limit
PAUSE = 10.0  # the stop-the-world GC
WRITES = 3
WORK_INTERVAL = 1.0
LOCK_WAIT = 3 * PAUSE  # liveness: a waiter gets the lock well within this


class SessionExpired(Exception):
    """A request on a session the server has expired."""


class StaleWrite(AssertionError):
    """The resource accepted a write from a lock holder older than one it had seen."""


class Resource:
    """What the lock protects; ``fenced`` makes it reject stale tokens."""

    def __init__(self, fenced):
        self.fenced = fenced
        self.highest = -1
        self.log = []
        self.serial = threading.Lock()  # the storage service handles one write at a time

    def write(self, token, who):
        with self.serial:
            if self.fenced and token < self.highest:
                return False
            if token < self.highest:
                raise StaleWrite(f"{who} wrote with lock token {token} after token {self.highest} was used: "
                                 f"two clients believed they held the lock ({self.log})")
            self.highest = token
            self.log.append((who, token))
            return True


# ------------------------------------------------------------------------- server


class Session:
    def __init__(self, endpoint):
        self.endpoint = endpoint
        self.expires_at = 0.0
        self.alive = True


class Server:
    def __init__(self):
        self.lock = threading.Lock()  # requests and session expiry change the tree one at a time
        self.nodes = {"/lock": None}  # path -> owning session (None: persistent)
        self.sequence = 0
        self.watches = {}  # path -> sessions to notify when it is deleted
        self.sessions = []
        self.selector = Selector()

    def touch(self, session):
        """ExpiryQueue: the session expires at the tick boundary after now + timeout."""
        session.expires_at = math.ceil((time.monotonic() + SESSION_TIMEOUT) / TICK) * TICK

    def connect(self, endpoint):
        session = Session(endpoint)
        self.touch(session)
        self.sessions.append(session)
        self.selector.wakeup()

    def serve(self):
        """The request pipeline: one request at a time, from any connection."""
        while True:
            ready = self.selector.select([s.endpoint for s in self.sessions])
            for session in self.sessions:
                if session.endpoint in ready:
                    request = session.endpoint.recv()
                    with self.lock:
                        self.handle(session, request)

    def handle(self, session, request):
        op, xid, path = request
        if not session.alive:
            session.endpoint.send(("expired", xid, None))
            return
        self.touch(session)
        if op == "create":  # ephemeral sequential
            name = f"{path}/lock-{self.sequence:010d}"
            self.sequence += 1
            self.nodes[name] = session
            result = name
        elif op == "children":
            result = sorted(p for p in self.nodes if p.startswith(path + "/"))
        elif op == "watch":  # exists() with a watcher: NoNode is False
            result = path in self.nodes
            if result:
                self.watches.setdefault(path, []).append(session)
        elif op == "delete":
            result = self.delete(path)
        else:  # ping
            result = None
        session.endpoint.send(("reply", xid, result))

    def delete(self, path):
        if self.nodes.pop(path, False) is False:
            return False
        for watcher in self.watches.pop(path, []):
            if watcher.alive:
                watcher.endpoint.send(("event", None, path))
        return True

    def session_tracker(self):
        """SessionTrackerImpl: each tick, expire sessions not heard from in time."""
        while True:
            time.sleep(TICK)
            with self.lock:
                for session in self.sessions:
                    if session.alive and time.monotonic() >= session.expires_at:
                        session.alive = False  # closeSession: its ephemerals go
                        for path in [p for p, owner in self.nodes.items() if owner is session]:
                            self.delete(path)
                        session.endpoint.send(("expired", 0, None))  # and its connection is closed


# ------------------------------------------------------------------------- client


class Client:
    """ZooKeeper client (SendThread, EventThread) plus Curator's ConnectionStateManager."""

    def __init__(self, node, endpoint):
        self.node = node
        self.endpoint = endpoint
        self.xid = 0
        self.replies = {}
        self.replied = threading.Condition()
        self.events = queue.SimpleQueue()
        self.states = queue.SimpleQueue()
        self.listeners = []
        self.watchers = {}  # path -> callback
        node.thread(self.send_thread, name="SendThread")
        node.thread(self.connection_state_manager, name="ConnectionStateManager")
        node.thread(self.event_thread, name="EventThread")

    def call(self, op, path=None):
        with self.replied:
            self.xid += 1
            xid = self.xid
        self.endpoint.send((op, xid, path))
        with self.replied:
            while xid not in self.replies:
                self.replied.wait()
            reply = self.replies.pop(xid)
        if reply is SessionExpired:
            raise SessionExpired(f"{self.node.name}: {op} {path}: session expired")
        return reply

    def send_thread(self):
        last_heard = time.monotonic()
        while True:
            try:
                kind, xid, payload = self.endpoint.recv(timeout=READ_TIMEOUT / 2)
            except TimeoutError:
                if time.monotonic() - last_heard > READ_TIMEOUT:
                    # "Client session timed out, have not heard from server": Disconnected
                    self.states.put("SUSPENDED")
                    last_heard = time.monotonic()
                self.endpoint.send(("ping", 0, None))
                continue
            last_heard = time.monotonic()
            if kind == "expired":  # the server says the session is gone
                self.states.put("LOST")
                payload = SessionExpired
            if kind == "event":
                self.events.put(payload)
            elif xid:
                with self.replied:
                    self.replies[xid] = payload
                    self.replied.notify_all()

    def event_thread(self):
        while True:
            path = self.events.get()
            self.watchers.pop(path)()

    def connection_state_manager(self):
        while True:
            state = self.states.get()
            for listener in self.listeners:
                listener(state)


class Mutex:
    """InterProcessMutex: the lowest sequence number holds the lock."""

    def __init__(self, client):
        self.client = client
        self.path = None

    def acquire(self):
        self.path = self.client.call("create", "/lock")
        while True:
            children = self.client.call("children", "/lock")
            index = children.index(self.path)
            if index == 0:
                return int(self.path.rsplit("-", 1)[1])  # the sequence number: a fencing token
            predecessor = children[index - 1]
            deleted = threading.Event()
            self.client.watchers[predecessor] = deleted.set
            if self.client.call("watch", predecessor) and not deleted.wait(LOCK_WAIT):
                raise TimeoutError(f"{self.client.node.name} waited {LOCK_WAIT:g}s for the lock: "
                                   f"{predecessor} was never deleted")

    def release(self):
        try:
            self.client.call("delete", self.path)
        except SessionExpired:
            pass  # the ephemeral node went with the session


# ------------------------------------------------------------------------ the run


def app(node, client, resource, use_listener):
    lock_valid = [True]
    if use_listener:  # Curator's advice: the lock is not held after SUSPENDED or LOST
        client.listeners.append(lambda state: lock_valid.__setitem__(0, False))
    mutex = Mutex(client)
    token = mutex.acquire()
    for _ in range(WRITES):
        node.pause_point("stop-the-world GC", PAUSE)
        if not lock_valid[0]:
            return  # the listener says the lock is gone
        if not resource.write(token, node.name):
            return  # fenced off: a newer holder has written
        time.sleep(WORK_INTERVAL)
    mutex.release()


def run(fenced=False, use_listener=False):
    net = Network()
    server_node = Node("zk")
    server = Server()
    resource = Resource(fenced)
    apps = []
    for name in ("A", "B"):
        node = Node(name)
        client_end, server_end = net.connect(node, server_node)
        server.connect(server_end)
        apps.append((node, Client(node, client_end)))
    server_node.thread(server.serve, name="serve")
    server_node.thread(server.session_tracker, name="SessionTracker")
    threads = []
    for node, client in apps:
        threads.append(node.thread(app, node, client, resource, use_listener, name="app"))
        time.sleep(0.5)  # A holds the lock before B asks for it
    for t in threads:
        t.join()


def main():
    """The recipe as is: the lock is believed held until release()."""
    run()


def with_listener():
    """A ConnectionStateListener revokes the lock on SUSPENDED/LOST: still two holders."""
    run(use_listener=True)


def fixed():
    """Fencing: the resource rejects a write whose token is older than one it accepted."""
    run(fenced=True)


if __name__ == "__main__":
    main()
