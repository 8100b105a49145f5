"""The story of a run: typed events from the scheduler, one model, two renderers that agree.

A run recorded by :class:`~interleave.story.TraceRecorder` keeps each scheduler event as a
dataclass of :mod:`interleave.events`; :class:`~interleave.story.Story` is built from them
once, and the text trace and the HTML timeline both tell what it holds.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import textwrap
import tomllib
from pathlib import Path
from typing import Any

from interleave import events, explore
from interleave.html import build_model, render_html
from interleave.program import load
from interleave.runner import RunConfig, Runner
from interleave.story import TraceRecorder
from interleave.strategies import Replay
from interleave.trace import render

ROOT = Path(__file__).resolve().parent.parent
EVENT_TYPES = tuple(c for c in vars(events).values() if isinstance(c, type) and dataclasses.is_dataclass(c)
                    and hasattr(c, "kind"))

# In the default order: main holds `a` and starts the worker, which takes `b` and waits for
# `a`; main then waits for `b`. Each waits for the other.
CROSSED = """
import threading

a, b = threading.Lock(), threading.Lock()


def worker():
    with b:
        with a:
            pass


def main():
    with a:
        t = threading.Thread(target=worker)
        t.start()
        with b:
            pass
    t.join()
"""

# In the default order: the worker waits for the lock main holds; main's release hands it over.
HANDOFF = """
import threading

lock = threading.Lock()


def worker():
    with lock:
        pass


def main():
    lock.acquire()
    t = threading.Thread(target=worker)
    t.start()
    lock.release()
    t.join()
"""


def recorded(tmp_path: Path, name: str, source: str) -> tuple[TraceRecorder, object]:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    recorder = TraceRecorder()
    result = Runner(load(f"{path}::main"), RunConfig()).run(Replay([]), (recorder,))
    return recorder, result.failure


def test_the_scheduler_reports_typed_events_not_words(tmp_path: Path) -> None:
    recorder, failure = recorded(tmp_path, "crossed", CROSSED)
    assert failure is not None and failure.kind == "deadlock"
    kinds = {e.kind for e in recorder.events}
    assert {"enter", "start", "acquire", "block", "deadlock", "teardown"} <= kinds
    assert all(isinstance(e.what, EVENT_TYPES) for e in recorder.events)
    blocks = [e.what for e in recorder.events if isinstance(e.what, events.Blocked) and e.what.api == "Lock.acquire"]
    assert len(blocks) == 2  # each thread, on the lock the other holds
    assert all(b.lock is not None and b.lock.startswith("Lock-") and b.holder_name for b in blocks)


_WATCHER = """
class Watcher:
    # An observer of a run: keeps what the scheduler reports, as it reports it.

    def __init__(self):
        self.seen = []
        self.steps = []

    def step(self, sched, thread, frame):
        self.steps.append((thread.index, frame.f_lineno))

    def event(self, sched, what):
        self.seen.append(what)
"""
# Compiled under a name that is no file, so the instrumentation leaves it alone (code of
# this file is the user's: its attribute reads would be accesses, noted to the watcher).
_namespace: dict[str, Any] = {}
exec(compile(_WATCHER, "<watcher>", "exec"), _namespace)
Watcher = _namespace["Watcher"]


def test_an_observer_sees_each_shared_access_as_data(tmp_path: Path) -> None:
    path = tmp_path / "box.py"
    path.write_text(textwrap.dedent("""
        import threading

        class Box:
            n = 0

        box = Box()

        def bump():
            box.n += 1

        def main():
            t = threading.Thread(target=bump)
            t.start()
            bump()
            t.join()
    """))
    watcher = Watcher()
    Runner(load(f"{path}::main"), RunConfig()).run(Replay([]), (watcher,))
    touched = [(e.field, e.write, e.value) for e in watcher.seen if isinstance(e, events.Accessed) and e.field == "n"]
    assert touched == [("n", False, 0), ("n", True, 1), ("n", False, 1), ("n", True, 2)]
    assert all(isinstance(e, EVENT_TYPES) for e in watcher.seen)


# A worker thread raises: the run fails in that thread.
RAISES = """
import threading


def worker():
    raise ValueError("boom")


def main():
    t = threading.Thread(target=worker, name="raiser")
    t.start()
    t.join()
"""


def watched(tmp_path: Path, name: str, source: str, *observers: Any) -> Any:
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    return Runner(load(f"{path}::main"), RunConfig()).run(Replay([]), observers)


def test_every_observer_of_a_run_sees_the_same_steps_and_events_in_the_same_order(tmp_path: Path) -> None:
    first, second, recorder = Watcher(), Watcher(), TraceRecorder()
    watched(tmp_path, "crossed", CROSSED, first, second, recorder)
    assert first.seen and first.steps
    assert second.seen == first.seen and second.steps == first.steps
    assert [e.what for e in recorder.events] == first.seen
    assert [(s.thread, s.lineno) for s in recorder.steps] == first.steps


def test_the_run_ends_with_an_event_that_says_how(tmp_path: Path) -> None:
    failing, passing = Watcher(), Watcher()
    result = watched(tmp_path, "raises", RAISES, failing)
    ended = failing.seen[-1]
    assert isinstance(ended, events.RunEnded)
    assert ended.failure is result.failure
    assert ended.failure is not None and ended.failure.kind == "exception" and ended.failure.thread == "raiser"
    assert not ended.interrupted and ended.uncontrolled is None
    assert watched(tmp_path, "handoff", HANDOFF, passing).failure is None
    assert passing.seen[-1] == events.RunEnded(None, None, False)
    assert sum(isinstance(e, events.RunEnded) for e in failing.seen + passing.seen) == 2  # once a run, last


def test_the_story_takes_the_failure_from_the_end_of_the_run(tmp_path: Path) -> None:
    recorder, failure = recorded(tmp_path, "raises", RAISES)
    story = recorder.story()
    assert story.failure is failure and failure is not None
    assert f"XX {failure.message}" in render(recorder, full=True)
    assert build_model(recorder)["failure"]["thread"] == "raiser"
    recorder, failure = recorded(tmp_path, "handoff", HANDOFF)
    assert failure is None and recorder.story().failure is None and build_model(recorder)["failure"] is None


def test_the_story_holds_the_wait_for_graph_of_a_deadlock(tmp_path: Path) -> None:
    recorder, failure = recorded(tmp_path, "crossed", CROSSED)
    story = recorder.story()
    assert story is recorder.story()  # built once
    names = story.names
    main = next(i for i, n in names.items() if n == "MainThread")
    worker = next(i for i, n in names.items() if n != "MainThread")
    assert story.wait_for == {main: worker, worker: main}
    assert story.in_cycle == {main, worker}
    # The timeline draws that graph: one wait box per blocked thread, both on the cycle.
    model = build_model(recorder)
    deadlock = next(it for it in model["items"] if it["k"] == "deadlock")
    assert sorted(b["lane"] for b in deadlock["boxes"] if b["cycle"]) == sorted([main, worker])
    assert sum(1 for e in model["edges"] if e["kind"] == "waitfor" and e["cycle"]) == 2


def test_a_hand_off_is_one_link_of_the_story_and_one_edge_of_the_timeline(tmp_path: Path) -> None:
    recorder, failure = recorded(tmp_path, "handoff", HANDOFF)
    assert failure is None
    story = recorder.story()
    handoffs = [link for link in story.links if link.kind == "handoff"]
    assert len(handoffs) == 1
    link = handoffs[0]
    released, acquired = story.events[link.start], story.events[link.end]
    assert isinstance(released.what, events.Released) and isinstance(acquired.what, events.Acquired)
    assert released.name == "MainThread" and acquired.name != "MainThread"
    edges = [e for e in build_model(recorder)["edges"] if e["kind"] == "handoff"]
    label, made = link.what.split(" (made at ")
    assert len(edges) == 1 and edges[0]["title"] == (f"MainThread releases lock ({label}, made at {made}, "
                                                     f"{acquired.name} acquires it")
    # The lock is the program's: the text trace shows its operations on their steps.
    text = render(recorder, full=True)
    lock = link.what.split(" (made at")[0]
    assert f"[release {lock}]" in text and f"[acquire {lock}]" in text


def test_the_text_trace_and_the_timeline_tell_the_same_preemptions() -> None:
    failure = explore(f"{ROOT / 'examples' / 'lost_update.py'}::main", runs=2000, seed=1, granularity="line",
                      shrink_time=5).failure
    assert failure is not None
    story = failure.recorder.story()
    preempted = [s for s in story.suspensions.values() if isinstance(story.events[s.event].what, events.Preempted)]
    assert preempted and all(s.step is not None for s in preempted)
    model = build_model(failure.recorder)
    resumes = [it["label"] for it in model["items"] if it["k"] == "mark" and it["type"] == "resume"]
    for s in preempted:
        step = story.steps[s.step]
        where = f"{Path(step.filename).name}:{step.lineno}"
        assert f"{story.events[s.event].name} is paused before" in failure.trace and where in failure.trace
        assert any(where in label for label in resumes), (where, resumes)
    assert model["preemptions"] == len(preempted) == failure.trace.count(">> preemption:")


def test_the_page_script_and_style_are_package_data_the_wheel_ships(tmp_path: Path) -> None:
    folder = ROOT / "interleave" / "timeline"
    files = sorted(p.name for p in folder.iterdir())
    assert {"timeline.js", "timeline.css"} <= set(files)
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["interleave"]
    for name in files:  # a file the globs miss would be left out of a non-editable install
        assert any(fnmatch.fnmatch(f"timeline/{name}", g) for g in globs), name
    recorder, failure = recorded(tmp_path, "handoff", HANDOFF)
    page = render_html(recorder, title="handoff")
    assert (folder / "timeline.js").read_text() in page and (folder / "timeline.css").read_text() in page
    model = page.split('<script type="application/json" id="model">')[1].split("</script>")[0]
    assert json.loads(model)["lanes"]


def test_segments_are_the_runs_of_one_thread_cut_where_asked(tmp_path: Path) -> None:
    recorder, _ = recorded(tmp_path, "crossed", CROSSED)
    story = recorder.story()
    runs = story.segments()
    assert runs[0][0] == 0 and runs[-1][1] == len(story.steps)
    assert all(a[1] == b[0] for a, b in zip(runs, runs[1:]))  # they tile the steps
    assert all(len({s.thread for s in story.steps[first:end]}) == 1 for first, end in runs)
    assert all(story.steps[a[1] - 1].thread != story.steps[b[0]].thread for a, b in zip(runs, runs[1:]))
    first, end = next((f, e) for f, e in runs if e - f > 1)
    cut = story.segments(0, {first + 1})
    assert (first, first + 1) in cut and len(cut) == len(runs) + 1
