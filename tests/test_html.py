"""The HTML timeline (``--html``): what the model says about a run, that the page stands
alone, and, in a real headless Chromium, that its script runs and draws the lanes.

The browser tests skip when no Chromium is installed (Debian: ``apt-get install -y
chromium``; another binary can be named with ``INTERLEAVE_CHROMIUM``).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

from interleave import explore
from interleave.control import annotate, set_group
from interleave.explore import replay
from interleave.html import build_model, render_html, write_html

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

HANDOFF = """
import threading

def main():
    lock = threading.Lock()
    cond = threading.Condition()
    state = {"n": 0, "ready": False}

    def waiter():
        with cond:
            while not state["ready"]:
                cond.wait()
        with lock:
            state["n"] += 1

    def worker():
        with lock:
            state["n"] += 1
        with cond:
            state["ready"] = True
            cond.notify()

    t1 = threading.Thread(target=waiter, name="waiter")
    t1.start()
    t2 = threading.Thread(target=worker, name="worker")
    t2.start()
    t1.join()
    t2.join()
    assert state["n"] == 0, "</script> is only text"  # always fails: we want the timeline
"""

NODES = """
import queue
import threading
import time

from interleave.control import annotate, choose, crash, set_group

__interleave__ = {"max_pauses": 0}


def main():
    to_server = queue.Queue()
    to_client = queue.Queue()
    log = []

    def flusher(msg):
        annotate("fsync", stall=0.5)
        time.sleep(0.5)  # a slow disk
        log.append(msg)

    def server():
        set_group("server")
        while True:
            msg = to_server.get()
            annotate("recv", msg=msg, what=f"put {msg}")
            disk = threading.Thread(target=flusher, args=(msg,), name="server-disk")
            disk.start()
            disk.join()
            annotate("send", msg=f"ack-{msg}", to="client", what="ack")
            to_client.put(f"ack-{msg}")

    def client():
        set_group("client")
        for n in range(2):
            annotate("send", msg=n, to="server", what=f"put {n}")
            to_server.put(n)
            reply = to_client.get(timeout=2)
            annotate("recv", msg=reply, what="ack")
            if n == 0 and choose("crash the server") == 1:
                crash([srv])
                annotate("restart", node="server")
        assert len(log) == 2, log

    srv = threading.Thread(target=server, daemon=True, name="server-main")
    srv.start()
    cli = threading.Thread(target=client, name="client-main")
    cli.start()
    cli.join()
"""

BIG = """
import threading
import time

def main():
    counter = {"n": 0}
    lock = threading.Lock()

    def worker(rounds):
        for i in range(rounds):
            with lock:
                counter["n"] += 1
            if i % 3 == 0:
                time.sleep(0)  # let the other worker in

    threads = [threading.Thread(target=worker, args=(1500,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counter["n"] == 0, counter
"""

POLLER = """
import time

__interleave__ = {"max_steps": 20_000}

def main():
    ready = []
    while not ready:  # nobody ever appends: a hang
        time.sleep(0.01)
"""

SLEEPER = """
import threading
import time

def main():
    done = []
    def worker():
        time.sleep(3)
        done.append(1)
    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert not done
"""

TWICE = """
import threading

class Counter:
    def __init__(self):
        self.a = 0
        self.b = 0

def main():
    counter = Counter()

    def worker():
        current = counter.a
        counter.a = current + 1
        current = counter.b
        counter.b = current + 1

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (counter.a, counter.b) != (1, 1), "both counts lost an update: two preemptions"
"""

#: A lock made when the module is imported, before any run: it is named by the accesses that read it.
PRELOCKED = """
import threading

class Account:
    lock = threading.Lock()
    balance = 0

def main():
    held = Account.lock  # read once, before the lock's first use in the run

    def deposit(lock):
        with lock:
            Account.balance += 1

    threads = [threading.Thread(target=deposit, args=(held,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Account.balance == 0, "every run fails: its timeline is drawn"
"""

_cache: dict[str, Any] = {}


def found(target: str) -> Any:
    """The failure report explore gives for ``target`` (cached: each target is explored once)."""
    if target not in _cache:
        report = explore(target, runs=3000, time_limit=30, seed=1)
        assert report.failure is not None, target
        _cache[target] = report.failure
    return _cache[target]


@pytest.fixture(scope="module")
def programs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("timeline_programs")
    for name, text in {"handoff": HANDOFF, "nodes": NODES, "big": BIG, "sleeper": SLEEPER, "poller": POLLER,
                       "twice": TWICE}.items():
        (root / f"{name}.py").write_text(textwrap.dedent(text))
    return root


def model_of(target: str) -> dict[str, Any]:
    failure = found(target)
    return build_model(failure.recorder, title=target, token=failure.replay)


def example(name: str) -> str:
    return f"{EXAMPLES / name}.py::main"


def lane_ids(model: dict[str, Any]) -> dict[str, int]:
    return {lane["name"]: lane["id"] for lane in model["lanes"]}


def steps_items(model: dict[str, Any]) -> list[dict[str, Any]]:
    return [it for it in model["items"] if it["k"] == "steps"]


def line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


# ----------------------------------------------------------------------------- the model


def test_one_lane_per_thread() -> None:
    model = model_of(example("lost_update"))
    assert [lane["name"] for lane in model["lanes"]] == ["MainThread", "Thread-1 (worker)", "Thread-2 (worker)"]
    used = {it["lane"] for it in steps_items(model)}
    assert used == {lane["id"] for lane in model["lanes"]}


def test_preemptions_are_marked_and_the_preempted_line_runs_on_resumption() -> None:
    failure = found(example("lost_update"))
    model = model_of(example("lost_update"))
    preempts = [it for it in model["items"] if it.get("type") == "preempt"]
    assert len(preempts) == failure.preemptions >= 1
    assert model["preemptions"] == failure.preemptions
    paused = [(it["lane"], it["at"][int(k)][1]) for it in steps_items(model) for k in it["paused"]]
    assert len(paused) == len(preempts)
    lane, line = paused[0]
    resumes = [it for it in model["items"] if it.get("type") == "resume"]
    assert resumes and resumes[0]["lane"] == lane and f":{line}" in resumes[0]["label"]


def test_the_failing_step_is_highlighted() -> None:
    model = model_of(example("lost_update"))
    hot = [(it["lane"], it["at"][int(k)][1], why) for it in steps_items(model) for k, why in it["hot"].items()]
    assert hot == [(lane_ids(model)["MainThread"], line_of(EXAMPLES / "lost_update.py", "assert counter.value"),
                    "fails here")]
    assert model["items"][-1]["k"] == "fail" and "lost update" in model["items"][-1]["label"]


def test_deadlock_wait_for_cycle() -> None:
    model = model_of(example("lock_order_deadlock"))
    ids = lane_ids(model)
    t1, t2, main = ids["Thread-1 (transfer)"], ids["Thread-2 (transfer)"], ids["MainThread"]
    deadlock = next(it for it in model["items"] if it["k"] == "deadlock")
    assert deadlock["cycle"] == sorted([t1, t2])
    box = {b["lane"]: b for b in deadlock["boxes"]}
    assert box[t1]["cycle"] and box[t2]["cycle"] and not box[main]["cycle"]
    assert "held by Thread-2 (transfer)" in box[t1]["label"]
    assert "Thread-1 (transfer) to finish" in box[main]["label"]
    lane_of = {b["id"]: b["lane"] for b in deadlock["boxes"]}
    waits = {(lane_of[e["from"]], lane_of[e["to"]]): e["cycle"] for e in model["edges"] if e["kind"] == "waitfor"}
    assert waits == {(t1, t2): True, (t2, t1): True, (main, t1): False}
    # Each blocked thread's last line is highlighted: the `with dst.lock:` of both transfers.
    line = line_of(EXAMPLES / "lock_order_deadlock.py", "with dst.lock")
    hot = {it["lane"]: it["at"][int(k)][1] for it in steps_items(model) for k in it["hot"]}
    assert hot[t1] == hot[t2] == line and main in hot


def test_lost_wakeup_has_no_cycle_but_a_wait_no_one_ends() -> None:
    model = model_of(example("lost_wakeup"))
    deadlock = next(it for it in model["items"] if it["k"] == "deadlock")
    assert deadlock["cycle"] == []
    consumer = lane_ids(model)["Thread-1 (consumer)"]
    label = next(b["label"] for b in deadlock["boxes"] if b["lane"] == consumer)
    assert "Condition.wait" in label and "no thread will send" in label


def test_lock_hand_offs_and_notify_edges(programs: Path) -> None:
    model = model_of(f"{programs / 'handoff.py'}::main")
    ids = lane_ids(model)
    by_id: dict[int, int] = {}
    for it in model["items"]:
        if "id" in it:
            by_id[it["id"]] = it["lane"]
        for _, anchor in it.get("anchors", ()):
            by_id[anchor] = it["lane"]
    # Locks are named by the variables the program keeps them in (here closures' cells).
    edges = {(e["kind"], by_id[e["from"]], by_id[e["to"]], e["label"]) for e in model["edges"]}
    waiter, worker, main = ids["waiter"], ids["worker"], ids["MainThread"]
    assert edges == {
        ("spawn", main, waiter, "start"),
        ("spawn", main, worker, "start"),
        ("handoff", waiter, worker, "cond"),  # cond.wait() gives the Condition's lock up; the worker takes it
        ("wake", worker, waiter, "notify"),  # cond.notify() ends the waiter's wait
        ("handoff", worker, waiter, "cond"),  # ... and the waiter gets the Condition's lock back
        ("handoff", worker, waiter, "lock"),  # the worker's `with lock:` before the waiter's
        ("wake", waiter, main, "exit"),  # the waiter ends: main's join returns
    }  # and nothing for the locks inside Condition.wait/notify, Thread.start or the thread's end


def test_clock_jumps_are_marked(programs: Path) -> None:
    model = model_of(f"{programs / 'sleeper.py'}::main")
    clocks = [it for it in model["items"] if it.get("type") == "clock"]
    assert [c["dt"] for c in clocks] == [3.0]
    timeouts = [it for it in model["items"] if it.get("type") == "timeout"]
    assert timeouts and model["items"].index(clocks[0]) < model["items"].index(timeouts[0])
    assert model["elapsed"] == 3.0


def test_nodes_messages_and_faults(programs: Path) -> None:
    model = model_of(f"{programs / 'nodes.py'}::main")
    ids = lane_ids(model)
    assert [(g["name"], [next(lane["name"] for lane in model["lanes"] if lane["id"] == i) for i in g["lanes"]])
            for g in model["groups"]] == [(None, ["MainThread"]), ("server", ["server-main", "server-disk"]),
                                          ("client", ["client-main"])]
    # Lanes are ordered by group, so a node's threads sit side by side.
    assert [lane["group"] for lane in model["lanes"]] == [None, "server", "server", "client"]
    messages = [e for e in model["edges"] if e["kind"] == "msg"]
    assert [e["label"] for e in messages] == ["put 0", "ack"]
    marks = [it for it in model["items"] if it["k"] == "mark"]
    crash = next(it for it in marks if it["type"] == "crash")
    assert crash["lanes"] == [ids["server-main"]]
    fault = next(it for it in marks if it["type"] == "fault")
    assert "crash the server" in fault["label"]
    restart = next(it for it in marks if it.get("note") == "restart")
    assert restart["lanes"] == sorted([ids["server-main"], ids["server-disk"]])
    fsync = next(it for it in marks if it.get("note") == "fsync")
    assert fsync["label"] == "fsync stalls 0.5s" and fsync["lanes"] == restart["lanes"]
    assert model["items"].index(crash) > model["items"].index(fault)


NAMED_NODES = """
import threading

def main():
    def work():
        pass
    threads = [threading.Thread(target=work, name=name) for name in ("S1.Peer", "S0.Peer", "S1.Sync", "helper")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert False, "show the timeline"
"""


def test_without_set_group_threads_named_node_dot_role_are_grouped(tmp_path: Path) -> None:
    (tmp_path / "named.py").write_text(textwrap.dedent(NAMED_NODES))
    model = model_of(f"{tmp_path / 'named.py'}::main")
    assert [(lane["name"], lane["group"]) for lane in model["lanes"]] == [
        ("MainThread", None), ("helper", None), ("S1.Peer", "S1"), ("S1.Sync", "S1"), ("S0.Peer", "S0")]


def test_annotated_programs_run_as_plain_python(programs: Path) -> None:
    assert annotate("send", msg=1) is None and set_group("node-a") is None
    namespace: dict[str, Any] = {}
    exec(compile((programs / "nodes.py").read_text(), "nodes.py", "exec"), namespace)
    namespace["main"]()  # real threads, real sleeps: no fault is chosen, so both puts are acknowledged


def test_replay_gives_the_same_timeline(programs: Path) -> None:
    target = f"{programs / 'handoff.py'}::main"
    failure = found(target)
    outcome = replay(target, failure.replay)
    assert build_model(outcome.recorder) == build_model(failure.recorder)


def test_large_runs_stay_small(programs: Path) -> None:
    model = model_of(f"{programs / 'big.py'}::main")
    assert model["steps"] > 10_000
    started = time.monotonic()
    page = render_html(found(f"{programs / 'big.py'}::main").recorder)
    assert time.monotonic() - started < 60  # (a loaded CI machine: this guards against a quadratic render)
    assert len(page) < 200 * model["steps"]


def test_a_polling_loop_folds_into_one_row(programs: Path) -> None:
    model = model_of(f"{programs / 'poller.py'}::main")
    assert model["steps"] >= 20_000  # the run went on to its step bound
    repeats = [it for it in model["items"] if it["k"] == "repeat"]
    assert len(repeats) == 1 and len(model["items"]) < 30
    loop = repeats[0]
    assert loop["n"] * loop["period"] > 20_000 and loop["body"] is None  # too many rows to keep
    assert loop["steps"] > 19_000 and loop["t1"] - loop["t0"] > 50
    hot = [why for it in steps_items(model) for why in it["hot"].values()]
    assert hot == ["still running here"] and model["items"][-1]["kind"] == "hang"


def test_locks_are_named_by_the_variable_they_are_kept_in() -> None:
    model = model_of(example("lock_order_deadlock"))
    # Two Account objects: both locks are `Account.lock`, told apart by the order they were made in.
    boxes = {b["label"] for it in model["items"] if it["k"] == "deadlock" for b in it["boxes"]}
    assert {"blocked in Lock.acquire: waits for Account.lock #2 held by Thread-2 (transfer)",
            "blocked in Lock.acquire: waits for Account.lock #1 held by Thread-1 (transfer)"} <= boxes
    blocks = [it["label"] for it in model["items"] if it.get("type") == "block" and "Lock.acquire" in it["label"]]
    assert sorted(blocks) == ["blocks in Lock.acquire: Account.lock #1 is held by Thread-1 (transfer)",
                              "blocks in Lock.acquire: Account.lock #2 is held by Thread-2 (transfer)"]
    # The label stays in the tooltip, to match the failure's details.
    titles = [b["title"] for it in model["items"] if it["k"] == "deadlock" for b in it["boxes"]]
    assert any("Account.lock #1 (Lock-1, made at examples/lock_order_deadlock.py:18)" in t for t in titles)


def test_a_lock_made_before_the_run_is_named_by_its_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "prelocked.py").write_text(textwrap.dedent(PRELOCKED))
    monkeypatch.syspath_prepend(str(tmp_path))
    import prelocked  # type: ignore[import-not-found]  # the lock is made now, outside any run

    report = explore(prelocked.main, runs=5, seed=1)
    assert report.failure is not None
    model = build_model(report.failure.recorder)
    assert [e["label"] for e in model["edges"] if e["kind"] == "handoff"] == ["Account.lock"]


def conflict_rows(model: dict[str, Any]) -> list[tuple[int, int, str]]:
    """``(lane, step number, note)`` of each step marked as one of the conflicting accesses."""
    return [(it["lane"], it["first"] + int(k) + 1, note) for it in steps_items(model)
            for k, note in it["conflict"].items()]


def test_a_lost_update_marks_the_read_the_write_between_and_the_write_back() -> None:
    model = model_of(example("lost_update"))
    ids = lane_ids(model)
    t1, t2 = ids["Thread-1 (worker)"], ids["Thread-2 (worker)"]
    rows = conflict_rows(model)
    assert [lane for lane, _, _ in rows] == [t1, t2, t1]
    (_, read, read_note), (_, write, _), (_, back, back_note) = rows
    assert model["conflict"]["summary"] == (f"Thread-2 (worker) writes Counter.value between Thread-1 (worker)'s read "
                                            f"(step {read}) and its write (step {back})")
    assert read_note.startswith("Thread-1 (worker) reads Counter.value here")
    assert back_note.endswith("that write is lost") and f"(step {write})" in back_note
    assert not model["conflict"]["race"]
    # The rows are the accesses: the read in the first worker's line, the writes in the other.
    source = (EXAMPLES / "lost_update.py").read_text().splitlines()
    lines = {it["first"] + int(k) + 1: source[it["at"][int(k)][1] - 1] for it in steps_items(model) for k in it["conflict"]}
    assert "counter.value" in lines[read].split("=", 1)[1] and lines[write].strip().startswith("counter.value =")
    # Arrows from each access to the next.
    anchors = {a[1]: it["first"] + a[0] + 1 for it in steps_items(model) for a in it["anchors"]}
    assert [(anchors[e["from"]], anchors[e["to"]]) for e in model["edges"] if e["kind"] == "conflict"] == \
        [(read, write), (write, back)]


def test_an_order_violated_across_a_preemption_is_marked() -> None:
    # nio_throttle: the pipeline answers C1's read while the I/O worker is preempted between its
    # submit and its count; the worker then reads the count the pipeline wrote.
    model = model_of("targets/nio_throttle.py::main")
    ids = lane_ids(model)
    rows = conflict_rows(model)
    assert [lane for lane, _, _ in rows] == [ids["pipeline"], ids["io_worker"]]
    (_, write, _), (_, read, _) = rows
    assert model["conflict"]["summary"] == (f"pipeline writes Server.in_process (step {write}) while io_worker is "
                                            f"preempted, and io_worker reads it (step {read})")


def test_a_data_race_marks_its_two_accesses(tmp_path: Path) -> None:
    program = tmp_path / "racy.py"
    program.write_text("\n".join(line for line in textwrap.dedent(TWICE).splitlines() if "assert" not in line))
    report = explore(f"{program}::main", races=True, runs=300, seed=0)
    failure = report.failure
    assert failure is not None and failure.kind == "race"
    model = build_model(failure.recorder)
    rows = conflict_rows(model)
    assert len(rows) == 2 and rows[0][0] != rows[1][0]
    assert model["conflict"]["race"] and model["conflict"]["summary"] == rows[1][2]
    assert all(note.startswith("race: ") and "Counter.a" in note for _, _, note in rows)


# ------------------------------------------------------------------------------ the page


def page_model(page: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="model">(.*?)</script>', page, re.S)
    assert match is not None
    return json.loads(match.group(1))


def test_page_stands_alone(programs: Path) -> None:
    failure = found(f"{programs / 'handoff.py'}::main")
    page = render_html(failure.recorder, title="handoff", token=failure.replay)
    # The source line with "</script>" in it neither ends the data early nor breaks the JSON.
    assert page_model(page) == json.loads(json.dumps(build_model(failure.recorder, title="handoff",
                                                                 token=failure.replay)))
    assert "default-src 'none'" in page
    without_svg_namespace = page.replace('"http://www.w3.org/2000/svg"', "")
    assert not re.search(r"https?://|<link\b|@import|\bsrc=", without_svg_namespace)
    assert all(ref.startswith("#") for ref in re.findall(r"url\(([^)]*)\)", page))  # SVG markers in the page
    assert failure.replay in page and "Text trace" in page


def test_report_json_leaves_the_recorder_out() -> None:
    report = explore(example("lost_update"), runs=3000, seed=1)
    assert report.failure is not None and report.failure.recorder is not None
    data = report.to_json()
    assert "recorder" not in data["failure"]
    json.dumps(data)


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "interleave", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_cli_explore_and_replay_write_the_timeline(tmp_path: Path) -> None:
    explored = run_cli("explore", "examples/lock_order_deadlock.py", "--runs", "3000", "--html",
                       str(tmp_path / "explore.html"), "--json", str(tmp_path / "report.json"), cwd=ROOT)
    assert explored.returncode == 1, explored.stderr
    token = json.loads((tmp_path / "report.json").read_text())["failure"]["replay"]
    model = page_model((tmp_path / "explore.html").read_text())
    assert any(it["k"] == "deadlock" and it["cycle"] for it in model["items"])
    assert model["token"] == token
    # The command the report prints, ready to copy on the page.
    assert model["command"] == explored.stdout.split("Replay it:\n", 1)[1].split("\n")[0].strip()
    assert model["command"] == f"interleave replay examples/lock_order_deadlock.py::main {token}"
    replayed = run_cli("replay", "examples/lock_order_deadlock.py", token, "--html", str(tmp_path / "replay.html"),
                       cwd=ROOT)
    assert replayed.returncode == 1, replayed.stderr
    assert page_model((tmp_path / "replay.html").read_text())["items"] == model["items"]


def test_cli_explore_without_failure_writes_no_timeline(tmp_path: Path) -> None:
    result = run_cli("explore", "examples/lost_update.py::fixed", "--runs", "20", "--html",
                     str(tmp_path / "none.html"), cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "none.html").exists()
    assert "no timeline was written" in result.stderr


# ------------------------------------------------------------------------ in a browser

_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless_shell")


def find_browser() -> str | None:
    named = os.environ.get("INTERLEAVE_CHROMIUM")
    if named:
        return shutil.which(named) or (named if os.path.exists(named) else None)
    return next((path for path in map(shutil.which, _BROWSERS) if path), None)


needs_browser = pytest.mark.skipif(find_browser() is None, reason="no Chromium found (Debian: apt-get install -y "
                                   "chromium; or set INTERLEAVE_CHROMIUM to a Chrome/Chromium binary)")


def chromium(page: Path | str, tmp_path: Path, *mode: str) -> str:
    browser = find_browser()
    assert browser is not None
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
         "--window-size=1400,900", *mode, page if isinstance(page, str) else page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def dom(page: Path | str, tmp_path: Path) -> str:
    """The page after its script ran, with any JS error it caught."""
    text = chromium(page, tmp_path, "--dump-dom")
    body = re.search(r"<body([^>]*)>", text)
    assert body is not None, text[:500]
    errors = re.search(r'<pre id="js-errors"[^>]*>(.*?)</pre>', text, re.S)
    assert "data-error" not in body.group(1), errors.group(1) if errors else text[:500]
    assert 'data-ready="1"' in body.group(1)
    return text


def clicked(page: Path, tmp_path: Path, script: str) -> tuple[str, Any]:
    """The page after ``script`` ran once the page's own script was done, and what it left in
    ``window.probe`` (as JSON, on the body's ``data-probe``)."""
    probe = (f"<script>window.probe = {{}}; {script}; "
             "document.body.setAttribute('data-probe', JSON.stringify(window.probe));</script></body>")
    out = tmp_path / f"clicked-{page.name}"
    out.write_text(page.read_text().replace("</body>", probe))
    text = dom(out, tmp_path)
    match = re.search(r'<body[^>]*data-probe="([^"]*)"', text)
    assert match is not None, text[:500]
    return text, json.loads(html.unescape(match.group(1)))


#: Where the row marked as the one jumped to is, in the window.
WHERE = ("function where(name) { const row = document.querySelector('.current');"
         " const box = row.getBoundingClientRect();"
         " window.probe[name] = {cls: row.className, text: row.textContent, top: box.top, bottom: box.bottom,"
         " height: innerHeight, scrolled: scrollY, count: (document.getElementById('count-preempt') || {}).textContent};"
         " }")


def timeline_of(target: str, tmp_path: Path) -> Path:
    failure = found(target)
    page = tmp_path / "page.html"
    write_html(page, failure.recorder, title=target, token=failure.replay,
               command=f"interleave replay {target} {failure.replay}")
    return page


def on_screen(at: dict[str, Any]) -> bool:
    return 0 <= at["top"] and at["bottom"] <= at["height"]


def read_png(path: Path) -> tuple[int, int, int, list[bytes]]:
    """Width, height, bytes per pixel and unfiltered rows of an 8-bit RGB(A) PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color, interlace)
    bpp = 3 if color == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev))
        elif kind == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


#: The first lane colours of the page's palette.
LANE_COLOURS = [(0x2F, 0x6F, 0xDB), (0xD9, 0x48, 0x2B), (0x1F, 0x9D, 0x55)]


@needs_browser
def test_browser_draws_one_lane_per_thread(tmp_path: Path) -> None:
    failure = found(example("lost_update"))
    page = tmp_path / "lost_update.html"
    write_html(page, failure.recorder, title="lost_update", token=failure.replay)
    text = dom(page, tmp_path)
    assert text.count('class="lane-head"') == 3
    assert text.count('class="b hot"') == 1 and "paused" in text
    assert 'class="m preempt"' in text and 'class="m fail"' in text
    shot = tmp_path / "shot.png"
    chromium(page, tmp_path, f"--screenshot={shot}")
    width, height, bpp, rows = read_png(shot)
    assert (width, height) == (1400, 900)
    # Every lane's colour shows up below the page header, each lane to the right of the last.
    xs: list[list[int]] = [[] for _ in LANE_COLOURS]
    for y in range(150, height, 2):
        row = rows[y]
        for x in range(0, width, 2):
            pixel = tuple(row[x * bpp:x * bpp + 3])
            for n, colour in enumerate(LANE_COLOURS):
                if all(abs(p - q) <= 8 for p, q in zip(pixel, colour)):
                    xs[n].append(x)
    assert all(len(found_x) > 20 for found_x in xs), [len(found_x) for found_x in xs]
    centres = [sorted(found_x)[len(found_x) // 2] for found_x in xs]
    assert centres == sorted(centres) and centres[2] - centres[0] > width // 3, centres


@needs_browser
def test_browser_draws_the_deadlock_cycle(tmp_path: Path) -> None:
    failure = found(example("lock_order_deadlock"))
    page = tmp_path / "deadlock.html"
    write_html(page, failure.recorder, title="deadlock")
    text = dom(page, tmp_path)
    assert len(re.findall(r'class="edge edge-waitfor cycle"', text)) == 2
    assert len(re.findall(r'class="edge edge-waitfor"', text)) == 1
    assert text.count('class="m wait cycle"') == 2


@needs_browser
def test_browser_groups_lanes_by_node_and_draws_messages(programs: Path, tmp_path: Path) -> None:
    failure = found(f"{programs / 'nodes.py'}::main")
    page = tmp_path / "nodes.html"
    write_html(page, failure.recorder, title="nodes")
    text = dom(page, tmp_path)
    assert re.findall(r'<div class="group-head"[^>]*>([^<]*)</div>', text) == ["(no node)", "server", "client"]
    assert text.count('class="edge edge-msg"') == 2
    assert 'class="m crash"' in text and 'class="m note n-restart"' in text and 'class="m note n-fsync"' in text


@needs_browser
def test_browser_virtual_time_axis(programs: Path, tmp_path: Path) -> None:
    failure = found(f"{programs / 'nodes.py'}::main")
    page = tmp_path / "nodes.html"
    write_html(page, failure.recorder, title="nodes")
    steps_view = dom(page, tmp_path)
    time_view = dom(page.as_uri() + "#time", tmp_path)
    ruler = re.findall(r'<div class="g"[^>]*>([^<]*)</div>', time_view)
    assert "t=0s" in ruler and "t=0.5s" in ruler and not any(r.startswith("t=") for r in
                                                              re.findall(r'<div class="g"[^>]*>([^<]*)</div>', steps_view))
    # The clock jump's band is taller on the time axis than on the step axis.
    band = r'<div class="m clock"[^>]*height: (\d+)px'
    assert int(re.findall(band, time_view)[0]) > int(re.findall(band, steps_view)[0])


@needs_browser
def test_browser_handles_ten_thousand_steps(programs: Path, tmp_path: Path) -> None:
    failure = found(f"{programs / 'big.py'}::main")
    page = tmp_path / "big.html"
    write_html(page, failure.recorder, title="big")
    started = time.monotonic()
    text = dom(page, tmp_path)
    assert time.monotonic() - started < 60
    boxes = text.count('class="b ')
    assert 0 < boxes < failure.steps // 3, (boxes, failure.steps)  # runs of steps are folded into one box each
    # The lock ping-pong is one "repeat" row; a click on it lays all its rows out.
    unfolded = tmp_path / "big-clicked.html"
    unfolded.write_text(page.read_text().replace("</body>", "<script>document.querySelectorAll('.m.repeat')"
                                                 ".forEach(function (row) { row.click(); });</script></body>"))
    assert dom(unfolded, tmp_path).count('class="b ') > 10 * boxes
    # One box per run of steps (the default above 2,000 steps): the failure is still one click away.
    _, probe = clicked(page, tmp_path, WHERE + "; document.getElementById('goto-fail').click(); where('fail');")
    assert "hot" in probe["fail"]["cls"] and on_screen(probe["fail"])


@needs_browser
def test_browser_jumps_to_each_preemption_and_to_the_failure(programs: Path, tmp_path: Path) -> None:
    target = f"{programs / 'twice.py'}::main"
    assert found(target).preemptions >= 2
    page = timeline_of(target, tmp_path)
    _, probe = clicked(page, tmp_path, WHERE + "; window.probe.top = scrollY;"
                       " document.getElementById('next-preempt').click(); where('first');"
                       " document.getElementById('next-preempt').click(); where('second');"
                       " document.getElementById('prev-preempt').click(); where('back');"
                       " document.getElementById('goto-fail').click(); where('fail');")
    first, second, back, fail = probe["first"], probe["second"], probe["back"], probe["fail"]
    assert probe["top"] == 0
    for at in (first, second, back):
        assert at["cls"] == "m preempt current" and at["text"].startswith("preemption: ") and on_screen(at), at
    assert second["scrolled"] > first["scrolled"] and back["scrolled"] == first["scrolled"]
    n = found(target).preemptions
    assert (first["count"], second["count"], back["count"]) == (f"1/{n}", f"2/{n}", f"1/{n}")
    assert "hot" in fail["cls"] and on_screen(fail) and fail["scrolled"] > second["scrolled"]


@needs_browser
def test_browser_copy_button_selects_the_replay_command(tmp_path: Path) -> None:
    target = example("lost_update")
    page = timeline_of(target, tmp_path)
    text, probe = clicked(page, tmp_path, "document.getElementById('copy').click();"
                          " window.probe.selected = String(window.getSelection());"
                          " window.probe.said = document.getElementById('copy').textContent;")
    assert probe["selected"] == f"interleave replay {target} {found(target).replay}"
    # The clipboard is the browser's to give: where it is not (a file:// page, no user gesture), the text is selected.
    assert probe["said"] in ("copied", "selected: press Ctrl+C")
    assert re.search(r'<body[^>]*data-copied="(clipboard|selected)"', text)


@needs_browser
def test_browser_names_locks_by_their_variables(tmp_path: Path) -> None:
    text = dom(timeline_of(example("lock_order_deadlock"), tmp_path), tmp_path)
    timeline = text.split('<div id="timeline"', 1)[1].split('<pre id="js-errors"', 1)[0]
    blocks = re.findall(r'<div class="m block"[^>]*>([^<]*)</div>', timeline)
    assert "blocks in Lock.acquire: Account.lock #1 is held by Thread-1 (transfer)" in blocks
    waits = re.findall(r'<div class="m wait cycle"[^>]*>([^<]*)</div>', timeline)
    assert sorted(w.split("waits for ")[1].split(" held")[0] for w in waits) == ["Account.lock #1", "Account.lock #2"]
    assert not re.search(r">[^<]*\bLock-\d", timeline)  # no label in the drawing (the tooltips keep them)


@needs_browser
def test_browser_highlights_the_conflicting_accesses(tmp_path: Path) -> None:
    page = timeline_of(example("lost_update"), tmp_path)
    text, probe = clicked(page, tmp_path, WHERE + "; document.getElementById('goto-conflict').click(); where('first');"
                          " document.getElementById('next-conflict').click(); where('second');")
    assert len(re.findall(r'class="b [^"]*\bconflict\b', text)) == 3
    assert len(re.findall(r'class="edge edge-conflict"', text)) == 2
    note = re.search(r'<p id="conflict-note">([^<]*)<button', text)
    assert note is not None and "lost update: Thread-2 (worker) writes Counter.value between Thread-1 (worker)'s read" \
        in html.unescape(note.group(1))
    first, second = probe["first"], probe["second"]
    assert "conflict" in first["cls"] and "reads Counter.value" in first["text"] and on_screen(first)
    assert "conflict" in second["cls"] and "writes Counter.value" in second["text"] and on_screen(second)
