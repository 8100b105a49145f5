"""ZOOKEEPER-4685 and ZOOKEEPER-4646: the follower's ACK order in the Zab SYNC phase.

Seed: /work/shared/seeds/003 (the ZOOKEEPER-4685 report); spec: zk-targets.md section D.
Related: ZOOKEEPER-3911 (added the asynchronous logRequest before ACK-LD), ZOOKEEPER-4643,
and the fixes ZOOKEEPER-4785 (3.9.2, 3.8.5) and ZOOKEEPER-4394 (3.9.3).

Three servers S0, S1, S2 run a small Zab: an election (the live server with the highest
(currentEpoch, last zxid, sid) leads once a quorum is up), discovery (FOLLOWERINFO,
LEADERINFO, ACKEPOCH), SYNC (DIFF or TRUNC, PROPOSAL/COMMIT pairs, NEWLEADER, ACK-LD,
UPTODATE) and broadcast (PROPOSAL, ACK, COMMIT). Threads per server, as in ZooKeeper:
a follower has a QuorumPeer thread and a SyncThread (append, fsync, then ACK; every ACK is
written under one ``leader_os`` lock, so lock order decides which ACK leaves first); a
leader has a QuorumPeer thread and one LearnerHandler per learner, which reads ONE packet
after NEWLEADER and treats an ACK that does not carry the new leader zxid as "from a
different epoch" (not counted). The leader waits initLimit*tickTime of virtual time for a
quorum of ACK-LDs, then shuts down. Connections are ordered and deliver what was sent
before a crash, then EOF. Each server has a disk: appends are lost on a crash until
fsynced; the epochs are written at once. When crash faults are on, every fsync may be
interrupted by a crash of its server (an ``interleave.choose`` fault decision).

The environment follows the seed's trace in three phases, restarting servers from their
disks between phases (a restart with an intact disk stands in for going back to LOOKING):
 1. S0, S1, S2 up: S2 leads epoch 1; a client write T0 commits everywhere; then S0 and S1
    crash, and S2 logs and proposes T1, which nobody else receives.
 2. S0 and S2 up: S2 leads epoch 2 and sends S0 a DIFF with PROPOSAL(T1), COMMIT(T1).
 3. S2 is gone for good; S0 and S1 up: they elect a new leader.

Variants (``main`` and ``lost_commit`` have the 3.9.1 follower, ``fixed`` the 4785 one):
 * ``main``: no crash faults, fsync costs no time. One preemption of S0's QuorumPeer
   between ``logRequest`` and its ACK-LD lets the SyncThread's ACK(T1) go first; the
   leader never counts S0's ACK-LD and gives up: ``LeaderShutdown`` (ZOOKEEPER-4685).
 * ``lost_commit``: crash faults on, and fsync takes 5 ms of virtual time, so the QuorumPeer
   always wins the ACK race (the usual case in production). S0 acks NEWLEADER before T1 is
   durable; S2 starts serving T1; one crash of S0 before its fsync, then S2's permanent loss,
   and the next leader has no T1: ``LostCommit`` (ZOOKEEPER-4646).
 * ``fixed``: crash faults on, fsync instant: S0 appends and fsyncs the sync txns on its
   QuorumPeer thread before ACK-LD, and ACKs the proposals only after UPTODATE.

Invariants, checked as code that raises:
 * needless shutdown (D4): a leader gives up on NEWLEADER acks only if no quorum of live
   servers sent it an ACK-LD (``LeaderShutdown`` otherwise);
 * no lost commit (D3): every txn a serving server applied (or answered a client with) is
   in the log of every leader elected later (``LostCommit`` otherwise).
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import interleave

__interleave__ = {"max_steps": 20_000, "max_pauses": 0, "max_faults": 2}

SIDS = (0, 1, 2)
QUORUM = 2
TICK = 1.0  # tickTime, virtual seconds
INIT_LIMIT = 5  # ticks a leader waits for a quorum in discovery and SYNC
SLOW_FSYNC = 0.005  # seconds an fsync takes on the ``lost_commit`` disk
PHASE = 3 * INIT_LIMIT * TICK  # long enough for any phase to settle (or time out)

FOLLOWERINFO, LEADERINFO, ACKEPOCH = "FOLLOWERINFO", "LEADERINFO", "ACKEPOCH"
DIFF, TRUNC, PROPOSAL, COMMIT = "DIFF", "TRUNC", "PROPOSAL", "COMMIT"
NEWLEADER, ACK, UPTODATE = "NEWLEADER", "ACK", "UPTODATE"


class LeaderShutdown(Exception):
    """A leader shut down although a quorum of live servers had acked NEWLEADER."""


class LostCommit(Exception):
    """A leader was elected without a txn that a serving server had already applied."""


class Closed(Exception):
    """The connection is gone (the peer crashed or shut down), or a read timed out."""


class GiveUp(Exception):
    """A leader's wait for a quorum timed out, or the leader is shutting down."""


def zxid(epoch: int, counter: int) -> int:
    return (epoch << 32) | counter


def show(z: int) -> str:
    return f"0x{z:x}"


@dataclass(frozen=True)
class Txn:
    zxid: int
    op: str


@dataclass(frozen=True)
class Packet:
    type: str
    zxid: int = 0
    txn: Txn | None = None
    epoch: int = 0


_EOF = Packet("EOF")


class Channel:
    """One direction of an ordered connection: what was sent before ``close`` still arrives."""

    def __init__(self) -> None:
        self.packets: queue.Queue[Packet] = queue.Queue()
        self.closed = False

    def send(self, packet: Packet) -> None:
        if self.closed:  # interleave: racy (a socket's state: the kernel orders send and close)
            raise Closed
        self.packets.put(packet)

    def recv(self, timeout: float | None = None) -> Packet:
        try:
            packet = self.packets.get(timeout=timeout)
        except queue.Empty:
            raise Closed from None
        if packet is _EOF:
            self.packets.put(_EOF)  # every later read sees EOF too
            raise Closed
        return packet

    def close(self) -> None:
        if not self.closed:  # interleave: racy (a socket's state)
            self.closed = True  # interleave: racy
            self.packets.put(_EOF)


@dataclass
class Connection:
    """A learner's connection to its leader."""

    to_leader: Channel = field(default_factory=Channel)
    to_learner: Channel = field(default_factory=Channel)

    def close(self) -> None:
        self.to_leader.close()
        self.to_learner.close()


@dataclass
class Disk:
    """A server's persistent state: the txn log (durable up to ``synced``) and its epochs."""

    log: list[Txn] = field(default_factory=list)
    synced: int = 0
    current_epoch: int = 0
    accepted_epoch: int = 0

    def last_zxid(self) -> int:
        return self.log[-1].zxid if self.log else 0

    def zxids(self) -> list[int]:
        return [t.zxid for t in self.log]

    def append(self, txn: Txn) -> None:
        self.log.append(txn)

    def truncate(self, last: int) -> None:
        self.log = [t for t in self.log if t.zxid <= last]
        self.synced = min(self.synced, len(self.log))

    def lose_unsynced(self) -> None:
        del self.log[self.synced:]


@dataclass
class Variant:
    fixed: bool  # the ZOOKEEPER-4785 follower
    crash_faults: bool  # every fsync may be interrupted by a crash of its server
    fsync_seconds: float


class Cluster:
    """The disks, the live servers, and what the invariants need to remember."""

    def __init__(self, variant: Variant) -> None:
        self.variant = variant
        self.disks = {sid: Disk() for sid in SIDS}
        self.servers: dict[int, Server] = {}
        self.exposed: dict[int, str] = {}  # zxid -> who applied it while serving
        self.ack_ld_sent: dict[int, set[int]] = {}  # epoch -> sids that wrote an ACK-LD
        self.leader: Leader | None = None

    def expose(self, z: int, who: str) -> None:
        self.exposed.setdefault(z, who)

    # ---------------------------------------------------------------- environment

    def restart(self, up: tuple[int, ...]) -> None:
        """Stop every server, start ``up`` from their disks, and elect (simplified FLE)."""
        for server in self.servers.values():
            server.crash()
        self.servers = {sid: Server(self, sid) for sid in up}
        if len(up) < QUORUM:
            return
        leader = max(self.servers.values(), key=lambda s: (s.disk.current_epoch, s.disk.last_zxid(), s.sid))
        lost = sorted(set(self.exposed) - set(leader.disk.zxids()))
        if lost:
            z = lost[0]
            raise LostCommit(
                f"S{leader.sid} was elected leader without txn {show(z)}, which {self.exposed[z]} "
                f"applied while serving; S{leader.sid}'s log: {[show(x) for x in leader.disk.zxids()]}"
            )
        # Every thread of the phase is started here, in a fixed order, so thread numbers (and
        # so schedules) do not depend on the interleaving.
        conns = {s.sid: Connection() for s in self.servers.values() if s is not leader}
        self.leader = Leader(leader, conns)
        leader.connections.extend(conns.values())
        leader.spawn("QuorumPeer", self.leader.lead)
        for sid, conn in conns.items():
            leader.spawn(f"LearnerHandler-S{sid}", self.leader.learner_handler, sid, conn)
        for sid, conn in conns.items():
            follower = self.servers[sid]
            follower.conn = conn
            follower.connections.append(conn)
            follower.spawn("QuorumPeer", follower.follow)
            follower.spawn("SyncThread", follower.sync_thread)  # idle until NEWLEADER hands it txns

    def client_write(self, op: str) -> None:
        if self.leader is not None:
            self.leader.requests.put(op)


class Server:
    """One incarnation of a server process: its threads and volatile state."""

    def __init__(self, cluster: Cluster, sid: int) -> None:
        self.cluster = cluster
        self.sid = sid
        self.disk = cluster.disks[sid]
        self.alive = True
        self.liveness = threading.Lock()
        self.log_lock = threading.Lock()  # ZKDatabase's logLock: the leader's log is read while it grows
        self.threads: list[threading.Thread] = []
        self.connections: list[Connection] = []
        self.applied: list[int] = []
        self.serving = False
        self.leader_os = threading.Lock()  # Learner.writePacket is synchronized on leaderOs
        self.sync_queue: queue.Queue[Txn] = queue.Queue()
        self.conn = Connection()  # replaced by the connection to the leader when following

    def spawn(self, role: str, target: Callable[..., Any], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=f"S{self.sid}.{role}", daemon=True)
        with self.liveness:  # a crash stops every thread started before it, and none starts after
            if not self.alive:
                return
            self.threads.append(thread)
            thread.start()

    def crash(self) -> None:
        """The process dies: its threads stop at once, unsynced appends are lost, its connections close.

        All of it under ``liveness``, so that whoever sees the process dead (the environment
        restarting servers, the next incarnation) sees what its death did.
        """
        me = threading.current_thread()
        with self.liveness:
            if not self.alive:
                return
            self.alive = False
            interleave.crash([t for t in self.threads if t is not me])  # what they did happens before what follows
            self.serving = False
            self.disk.lose_unsynced()
            for conn in self.connections:
                conn.close()
        interleave.crash(self.threads)  # the calling thread too, if it is one of them

    def is_alive(self) -> bool:
        with self.liveness:
            return self.alive

    def fsync(self) -> None:
        """Make every appended txn durable; with crash faults on, the server may die first."""
        variant = self.cluster.variant
        if variant.crash_faults and interleave.choose(f"crash S{self.sid} before its fsync completes"):
            self.crash()
        if variant.fsync_seconds:
            time.sleep(variant.fsync_seconds)
        self.disk.synced = len(self.disk.log)

    def apply(self, z: int) -> None:
        self.applied.append(z)
        if self.serving:
            self.cluster.expose(z, f"S{self.sid}")

    # ------------------------------------------------------------------ follower

    def follow(self) -> None:
        conn = self.conn
        try:
            conn.to_leader.send(Packet(FOLLOWERINFO, epoch=self.disk.accepted_epoch))
            info = conn.to_learner.recv(INIT_LIMIT * TICK)
            new_epoch = info.epoch
            self.disk.accepted_epoch = new_epoch
            conn.to_leader.send(Packet(ACKEPOCH, self.disk.last_zxid(), epoch=self.disk.current_epoch))
            self.sync_with_leader(conn, new_epoch)
            while True:
                packet = conn.to_learner.recv()
                if packet.type == PROPOSAL:
                    self.sync_queue.put(packet.txn)  # FollowerZooKeeperServer.logRequest
                elif packet.type == COMMIT:
                    self.apply(packet.zxid)
        except Closed:
            conn.close()  # back to LOOKING; the environment runs the next election

    def sync_with_leader(self, conn: Connection, new_epoch: int) -> None:
        """Learner.syncWithLeader after a DIFF or TRUNC, up to and including UPTODATE."""
        not_committed: list[Txn] = []
        committed: list[int] = []
        to_ack: list[int] = []
        while True:
            packet = conn.to_learner.recv(INIT_LIMIT * TICK)
            if packet.type == TRUNC:
                self.disk.truncate(packet.zxid)
                self.disk.synced = len(self.disk.log)
            elif packet.type == PROPOSAL:
                not_committed.append(packet.txn)
            elif packet.type == COMMIT:
                committed.append(packet.zxid)
            elif packet.type == NEWLEADER and not self.cluster.variant.fixed:
                # 3.9.1: the epoch first (ZOOKEEPER-4643), then hand the txns to the
                # SyncThread, which fsyncs and ACKs them on its own time, then ACK-LD.
                self.disk.current_epoch = new_epoch
                for txn in not_committed:
                    self.sync_queue.put(txn)
                not_committed.clear()
                self.write_packet(Packet(ACK, packet.zxid))
                self.cluster.ack_ld_sent.setdefault(new_epoch, set()).add(self.sid)
            elif packet.type == NEWLEADER:
                # ZOOKEEPER-4785: persist on this thread, then the epoch, then ACK-LD;
                # the proposals are ACKed only after UPTODATE.
                for txn in not_committed:
                    self.disk.append(txn)
                self.fsync()
                self.disk.current_epoch = new_epoch
                to_ack = [txn.zxid for txn in not_committed]
                not_committed.clear()
                self.write_packet(Packet(ACK, packet.zxid))
                self.cluster.ack_ld_sent.setdefault(new_epoch, set()).add(self.sid)
            elif packet.type == UPTODATE:
                self.write_packet(Packet(ACK, zxid(new_epoch, 0)))
                self.serving = True
                for z in to_ack:
                    self.write_packet(Packet(ACK, z))
                for z in committed:
                    self.apply(z)
                return

    def sync_thread(self) -> None:
        """SyncRequestProcessor + SendAckRequestProcessor: append, fsync, then ACK."""
        while True:
            txn = self.sync_queue.get()
            self.disk.append(txn)
            self.fsync()
            try:
                self.write_packet(Packet(ACK, txn.zxid))
            except Closed:
                return

    def write_packet(self, packet: Packet) -> None:
        with self.leader_os:
            self.conn.to_leader.send(packet)


class Leader:
    """Leader.lead and its LearnerHandlers for one epoch."""

    def __init__(self, server: Server, learners: dict[int, Connection]) -> None:
        self.server = server
        self.learners = learners
        self.cond = threading.Condition()
        self.epoch_requests: set[int] = set()
        self.max_accepted = 0
        self.new_epoch = 0
        self.epoch_acks: set[int] = set()
        self.new_leader_zxid = 0
        self.new_leader_acks: set[int] = set()
        self.quorum_formed = False
        self.state = "SYNC"  # then RUNNING or SHUTDOWN
        self.forwarding: dict[int, Connection] = {}
        self.outstanding: dict[int, set[int]] = {}
        self.requests: queue.Queue[str] = queue.Queue()
        self.counter = 0
        self.log: list[str] = []  # what a ZooKeeper leader would log at WARN/ERROR

    def lead(self) -> None:
        server = self.server
        try:
            epoch = self.epoch_to_propose(server.sid, server.disk.accepted_epoch)
            server.disk.accepted_epoch = epoch
            self.wait_for_epoch_ack(server.sid)
            server.disk.current_epoch = epoch
            server.applied = server.disk.zxids()  # loadData: the leader's tree is its whole log
            self.wait_for_new_leader_ack(server.sid, self.new_leader_zxid)
        except GiveUp as exc:
            self.shutdown(str(exc))
            return
        with self.cond:
            self.state = "RUNNING"
            self.cond.notify_all()
        server.serving = True
        for z in server.applied:
            server.cluster.expose(z, f"S{server.sid}")
        while True:
            self.propose(self.requests.get())

    def quorum(self, sids: set[int]) -> bool:
        return self.server.sid in sids and len(sids) >= QUORUM

    def epoch_to_propose(self, sid: int, accepted_epoch: int) -> int:
        with self.cond:
            if not self.new_epoch:
                self.epoch_requests.add(sid)
                self.max_accepted = max(self.max_accepted, accepted_epoch)
                if self.quorum(self.epoch_requests):
                    self.new_epoch = self.max_accepted + 1
                    self.new_leader_zxid = zxid(self.new_epoch, 0)
                    self.cond.notify_all()
                elif not self.cond.wait_for(lambda: self.new_epoch or self.state == "SHUTDOWN", INIT_LIMIT * TICK):
                    raise GiveUp("Timeout while waiting for epoch from quorum")
            if self.state == "SHUTDOWN":
                raise GiveUp("shutting down")
            return self.new_epoch

    def wait_for_epoch_ack(self, sid: int) -> None:
        with self.cond:
            self.epoch_acks.add(sid)
            if self.quorum(self.epoch_acks):
                self.cond.notify_all()
            elif not self.cond.wait_for(lambda: self.quorum(self.epoch_acks) or self.state == "SHUTDOWN",
                                        INIT_LIMIT * TICK):
                raise GiveUp("Timeout while waiting for epoch to be acked by quorum")

    def wait_for_new_leader_ack(self, sid: int, ack_zxid: int) -> None:
        with self.cond:
            if self.quorum_formed:
                return
            if ack_zxid != self.new_leader_zxid:
                self.log.append(f"NEWLEADER ACK from sid: {sid} is from a different epoch - "
                                f"current {show(self.new_leader_zxid)} received {show(ack_zxid)}")
                return
            self.new_leader_acks.add(sid)
            if self.quorum(self.new_leader_acks):
                self.quorum_formed = True
                self.cond.notify_all()
            elif not self.cond.wait_for(lambda: self.quorum_formed or self.state == "SHUTDOWN", INIT_LIMIT * TICK):
                raise GiveUp("Timeout while waiting for NEWLEADER to be acked by quorum")

    def shutdown(self, reason: str) -> None:
        cluster = self.server.cluster
        epoch = self.new_epoch
        acked = {sid for sid in cluster.ack_ld_sent.get(epoch, set()) if cluster.servers[sid].is_alive()}
        if epoch and self.quorum(acked | {self.server.sid}):
            raise LeaderShutdown(
                f"S{self.server.sid} shut down epoch {epoch} ({reason}) although "
                f"{', '.join(f'S{s}' for s in sorted(acked))} sent an ACK-LD and is alive; "
                f"leader log: {self.log}"
            )
        with self.cond:
            self.state = "SHUTDOWN"
            self.cond.notify_all()
        for conn in self.learners.values():
            conn.close()

    def learner_handler(self, sid: int, conn: Connection) -> None:
        try:
            info = conn.to_leader.recv(INIT_LIMIT * TICK)
            epoch = self.epoch_to_propose(sid, info.epoch)
            conn.to_learner.send(Packet(LEADERINFO, epoch=epoch))
            ack_epoch = conn.to_leader.recv(INIT_LIMIT * TICK)
            self.wait_for_epoch_ack(sid)
            self.send_sync(conn, ack_epoch.zxid)
            conn.to_learner.send(Packet(NEWLEADER, self.new_leader_zxid))
            first = conn.to_leader.recv(INIT_LIMIT * TICK)  # the ONE packet read after NEWLEADER
            if first.type != ACK:
                return
            self.wait_for_new_leader_ack(sid, first.zxid)
            with self.cond:  # waitForStartup
                self.cond.wait_for(lambda: self.state != "SYNC")
                if self.state != "RUNNING":
                    return
                conn.to_learner.send(Packet(UPTODATE))
                self.forwarding[sid] = conn
            while True:
                packet = conn.to_leader.recv()
                if packet.type == ACK:
                    self.process_ack(sid, packet.zxid)
        except (Closed, GiveUp):
            conn.close()

    def send_sync(self, conn: Connection, learner_last: int) -> None:
        """A DIFF (after a TRUNC if the learner has txns this leader does not)."""
        with self.server.log_lock:
            log = list(self.server.disk.log)
        zxids = [t.zxid for t in log]
        if learner_last and learner_last not in zxids:
            common = max((z for z in zxids if z < learner_last), default=0)
            conn.to_learner.send(Packet(TRUNC, common))
            learner_last = common
        conn.to_learner.send(Packet(DIFF))
        for txn in log:
            if txn.zxid > learner_last:
                conn.to_learner.send(Packet(PROPOSAL, txn.zxid, txn))
                conn.to_learner.send(Packet(COMMIT, txn.zxid))

    def propose(self, op: str) -> None:
        """A client write: log it here, then send the proposal to every synced learner."""
        self.counter += 1
        txn = Txn(zxid(self.new_epoch, self.counter), op)
        with self.server.log_lock:
            self.server.disk.append(txn)
        self.server.fsync()
        with self.cond:
            self.outstanding[txn.zxid] = {self.server.sid}
            for sid, conn in list(self.forwarding.items()):
                try:
                    conn.to_learner.send(Packet(PROPOSAL, txn.zxid, txn))
                except Closed:
                    del self.forwarding[sid]

    def process_ack(self, sid: int, ack_zxid: int) -> None:
        with self.cond:
            acks = self.outstanding.get(ack_zxid)
            if acks is None:
                return  # the UPTODATE ack, or a txn committed by NEWLEADER
            acks.add(sid)
            if not self.quorum(acks):
                return
            del self.outstanding[ack_zxid]
            for conn in self.forwarding.values():
                try:
                    conn.to_learner.send(Packet(COMMIT, ack_zxid))
                except Closed:
                    pass
        self.server.apply(ack_zxid)


def scenario(variant: Variant) -> None:
    """The seed's trace; see the module docstring."""
    cluster = Cluster(variant)
    cluster.restart((0, 1, 2))  # S2 leads epoch 1
    time.sleep(PHASE)
    cluster.client_write("create /a")  # T0, committed by all three
    time.sleep(PHASE)
    cluster.servers[0].crash()
    cluster.servers[1].crash()
    cluster.client_write("create /b")  # T1, logged by S2 alone
    time.sleep(PHASE)
    cluster.restart((0, 2))  # S2 leads epoch 2 and syncs S0 with a DIFF carrying T1
    time.sleep(PHASE)
    cluster.restart((0, 1))  # S2 is gone for good


def main() -> None:
    """3.9.1 follower: the SyncThread's ACK may beat ACK-LD (ZOOKEEPER-4685)."""
    scenario(Variant(fixed=False, crash_faults=False, fsync_seconds=0.0))


def lost_commit() -> None:
    """3.9.1 follower with crash faults and a slow disk: a served txn is lost (ZOOKEEPER-4646)."""
    scenario(Variant(fixed=False, crash_faults=True, fsync_seconds=SLOW_FSYNC))


def fixed() -> None:
    """ZOOKEEPER-4785 follower, with crash faults: neither bug."""
    scenario(Variant(fixed=True, crash_faults=True, fsync_seconds=0.0))
