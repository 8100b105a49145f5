"""interleave.sim: connections, nodes and disks, run through explore/replay like any program."""
import threading
import time

import pytest

from interleave import explore, replay
from interleave.sim import ConnectionClosed, Disk, Network, Node, Selector

SMALL = dict(runs=3000, time_limit=20, seed=3)


def _explore(program, **kwargs):
    options = dict(SMALL)
    options.update(kwargs)
    return explore(program, **options)


# ------------------------------------------------------------------ connections


def test_fifo_per_connection_in_every_schedule():
    def program():
        net = Network()
        got = []
        a1, b1 = net.connect("s1", "r")
        a2, b2 = net.connect("s2", "r")

        def sender(end, tag):
            for i in range(3):
                end.send((tag, i))

        senders = [threading.Thread(target=sender, args=(a1, "x")), threading.Thread(target=sender, args=(a2, "y"))]
        for t in senders:
            t.start()
        for _ in range(3):
            got.append(b1.recv())
            got.append(b2.recv())
        assert [m for m in got if m[0] == "x"] == [("x", 0), ("x", 1), ("x", 2)], got
        assert [m for m in got if m[0] == "y"] == [("y", 0), ("y", 1), ("y", 2)], got

    report = _explore(program, strategy="dfs")
    assert report.failure is None, report.failure and report.failure.message
    assert report.exhausted


def test_which_connection_is_served_first_is_the_schedulers_choice():
    def program():
        net = Network()
        a1, b1 = net.connect("s1", "r")
        a2, b2 = net.connect("s2", "r")
        def sender(end, tag):
            end.send(tag)

        for end, tag in ((a1, "x"), (a2, "y")):
            threading.Thread(target=sender, args=(end, tag)).start()
        ready = Selector().select([b1, b2])
        assert ready == [b1, b2], f"only {[e.name for e in ready]} ready"

    report = _explore(program)
    assert report.failure is not None and report.failure.kind == "exception"
    assert "only" in report.failure.message


def test_close_gives_eof_after_the_data_sent_before():
    def program():
        a, b = Network().connect("a", "b")
        a.send(1)
        a.send(2)
        a.close()
        assert [b.recv(), b.recv()] == [1, 2]
        with pytest.raises(ConnectionClosed):
            b.recv()
        with pytest.raises(ConnectionClosed):
            a.send(3)
        b.send(4)  # the peer has closed: discarded, not an error

    report = _explore(program, runs=50)
    assert report.failure is None, report.failure and report.failure.message


def test_close_wakes_a_blocked_reader_on_the_same_side():
    def program():
        a, b = Network().connect("a", "b")
        outcome = []

        def reader():
            try:
                b.recv()
            except ConnectionClosed:
                outcome.append("closed")

        t = threading.Thread(target=reader)
        t.start()
        b.close()
        t.join()
        assert outcome == ["closed"]

    report = _explore(program, strategy="dfs")
    assert report.failure is None, report.failure and report.failure.message


def test_recv_timeout_in_virtual_time():
    def program():
        a, b = Network().connect("a", "b")
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            b.recv(timeout=30)
        assert time.monotonic() - start == 30

    report = _explore(program, runs=20)
    assert report.failure is None, report.failure and report.failure.message


def test_a_delay_is_a_fault_decision_and_keeps_fifo_order():
    def program():
        a, b = Network(delay=5).connect("a", "b")
        start = time.monotonic()
        a.send(1)
        a.send(2)
        assert [b.recv(), b.recv()] == [1, 2]  # a delayed first message holds the second back
        assert time.monotonic() - start < 1, "delayed"

    report = _explore(program)
    assert report.failure is not None and "delayed" in report.failure.message
    assert report.failure.preemptions == 1  # one fault: the first send delayed
    assert replay(program, report.failure.replay).failure.message == report.failure.message
    clean = _explore(program, max_faults=0, runs=200)
    assert clean.failure is None


def test_selector_wakeup_returns_at_once():
    def program():
        a, b = Network().connect("a", "b")
        selector = Selector()
        threading.Thread(target=selector.wakeup).start()
        assert selector.select([b]) == []
        a.send("x")
        assert selector.select([b]) == [b]

    report = _explore(program, strategy="dfs")
    assert report.failure is None, report.failure and report.failure.message


# ------------------------------------------------------------------------ disk


def _crash_program(check_unsynced):
    def program():
        node = Node("n")

        def writer():
            node.disk.append("synced")
            node.disk.fsync()
            node.disk.append("unsynced")
            node.crash_point("before the second fsync")
            node.disk.fsync()

        node.thread(writer).join()  # returns when the writer is done or crashed
        assert node.disk.log()[:1] == ["synced"], node.disk.log()
        if check_unsynced:
            assert node.disk.log() == ["synced", "unsynced"], f"lost {node.disk.log()}"

    return program


def test_crash_loses_unsynced_data():
    report = _explore(_crash_program(check_unsynced=True))
    assert report.failure is not None and "lost ['synced']" in report.failure.message
    assert report.failure.preemptions == 1
    again = replay(_crash_program(check_unsynced=True), report.failure.replay)
    assert again.failure is not None and again.failure.message == report.failure.message


def test_crash_keeps_fsynced_data():
    report = _explore(_crash_program(check_unsynced=False), strategy="dfs")
    assert report.failure is None, report.failure and report.failure.message
    assert report.exhausted


def test_fsync_stall_is_a_fault_decision():
    def program():
        disk = Disk("d", stall=30)
        disk.append(1)
        start = time.monotonic()
        disk.fsync()
        assert time.monotonic() - start < 1, "stalled"
        assert disk.synced() == [1]

    report = _explore(program)
    assert report.failure is not None and "stalled" in report.failure.message
    assert _explore(program, max_faults=0, runs=100).failure is None


def test_a_crash_during_a_stalled_fsync_makes_nothing_durable():
    def program():
        node = Node("n", Disk("d", stall=30))

        def writer():
            node.disk.append(1)
            node.disk.write("epoch", 2)
            node.disk.fsync()

        node.thread(writer)
        time.sleep(10)
        node.crash()
        assert node.disk.synced() == [1] and node.disk.read("epoch") == 2, "not durable"

    report = _explore(program)
    assert report.failure is not None and "not durable" in report.failure.message


# ----------------------------------------------------------------------- nodes


def test_crash_closes_the_nodes_connections_and_restart_reads_the_disk():
    def program():
        net = Network()
        node = Node("server")
        client, server_end = net.connect("client", node)
        seen = []

        def serve(end):
            node.disk.append(node.incarnation)
            node.disk.fsync()
            node.disk.append("not synced")
            end.send(("hello", node.incarnation))
            time.sleep(100)

        node.thread(serve, server_end)
        assert client.recv() == ("hello", 1)
        node.crash()
        with pytest.raises(ConnectionClosed):
            client.recv()
        node.restart(lambda: seen.append(node.disk.log())).join()
        assert seen == [[1]] and node.incarnation == 2

    report = _explore(program, runs=200)
    assert report.failure is None, report.failure and report.failure.message


def _pause_program(use_pause_point):
    def program():
        node = Node("n")
        ticks = []

        def worker():
            for i in range(5):
                if use_pause_point and i == 1:
                    node.pause_point("between ticks", 10)
                ticks.append(time.monotonic())
                time.sleep(1)

        node.thread(worker)
        if not use_pause_point:
            time.sleep(1.5)
            node.pause(10)
        time.sleep(20)
        gaps = [b - a for a, b in zip(ticks, ticks[1:])]
        assert max(gaps) < 5, f"paused: gaps {gaps}"

    return program


def test_a_paused_node_does_not_run_while_time_passes():
    report = _explore(_pause_program(use_pause_point=False), runs=50, max_pauses=0)
    assert report.failure is not None and "paused" in report.failure.message
    assert report.failure.preemptions == 0  # the controller pauses it: no decision needed


def test_pause_point_is_a_fault_decision():
    # max_pauses=0: no time jumps of the scheduler's own, so only the node's pause can open a gap
    report = _explore(_pause_program(use_pause_point=True), max_pauses=0)
    assert report.failure is not None and "paused" in report.failure.message
    assert report.failure.preemptions == 1
    assert _explore(_pause_program(use_pause_point=True), max_faults=0, max_pauses=0, runs=200).failure is None


def test_other_nodes_run_while_one_is_paused():
    def program():
        paused, other = Node("paused"), Node("other")
        progress = {"paused": 0, "other": 0}

        def count(name):
            while True:
                progress[name] += 1
                time.sleep(1)

        paused.thread(count, "paused")
        other.thread(count, "other")
        controller = threading.Thread(target=lambda: (time.sleep(0.5), paused.pause(5)))
        controller.start()
        time.sleep(1.25)  # t=1.25 and t=4.75: inside the pause (t=0.5 to 5.5), between ticks
        before = dict(progress)
        time.sleep(3.5)
        assert progress["paused"] == before["paused"], progress
        assert progress["other"] == before["other"] + 3, progress
        controller.join()
        time.sleep(1.1)
        assert progress["paused"] > before["paused"], progress

    report = _explore(program, runs=300, max_pauses=0)
    assert report.failure is None, report.failure and report.failure.message


def test_faults_never_happen_outside_a_run():
    node = Node("n")
    node.crash_point("here")  # no scheduler: no fault
    assert not node.crashed
    with pytest.raises(RuntimeError):
        node.crash()
    disk = Disk("d", stall=1000)
    disk.append(1)
    disk.fsync()  # would take 1000 s if it stalled
    assert disk.synced() == [1]
