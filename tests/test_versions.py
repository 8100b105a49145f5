"""Python 3.11, 3.12 and 3.13 behave the same under interleave.

Covers what differs between versions underneath: the tracer (``sys.settrace`` on 3.11,
``sys.monitoring`` on 3.12+), switching greenlets inside its callbacks, 3.13's thread
handles, and replay tokens made on another version. The whole suite runs on each
version (``.ci/run``); the tests marked for one version check what only it has.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from interleave import BadInput, explore, replay, scheduler, tracing, watchdog
from interleave.decisions import Decision, Key, run_thread
from interleave.program import load
from interleave.runner import RunConfig, Runner
from interleave.schedule import PYTHON, Token
from interleave.strategies.replay import Replay
from interleave.story import TraceRecorder

ROOT = Path(__file__).resolve().parent.parent
MONITORING = sys.version_info >= (3, 12)
needs_monitoring = pytest.mark.skipif(not MONITORING, reason="sys.monitoring exists from Python 3.12")


_ROUND_ROBIN = """
from interleave.decisions import RunThread

class RoundRobin:
    # At every switch point of a worker (thread index > 0), the next worker runs.

    def choose(self, point):
        cur = point.thread
        workers = [o for o in point.options if isinstance(o, RunThread) and o.thread > 0]
        if cur == 0 or not workers:
            return point.default
        later = [o for o in workers if o.thread > cur]
        return later[0] if later else workers[0]
"""
# Compiled under a name that is no file: the tracer leaves it alone, as it leaves
# interleave's own strategies (a chooser in this file would get switch points itself).
_namespace: dict[str, Any] = {}
exec(compile(_ROUND_ROBIN, "<round-robin chooser>", "exec"), _namespace)
RoundRobin = _namespace["RoundRobin"]


def run_once(program: Callable[[], Any], chooser: Any = None, granularity: str = tracing.LINE) -> tuple[Any, TraceRecorder]:
    recorder = TraceRecorder()
    runner = Runner(load(program), RunConfig(granularity=granularity))
    try:
        result = runner.run(chooser or Replay([]), (recorder,))
    finally:
        runner.close()  # its watchdog's thread would outlive the test, into the next one's registries
    return result, recorder


class hold_tool_ids:
    """Occupy ``sys.monitoring`` tool ids for the length of a ``with`` block."""

    def __init__(self, *ids: int) -> None:
        self.ids = ids

    def __enter__(self) -> hold_tool_ids:
        for tool in self.ids:
            sys.monitoring.use_tool_id(tool, "someone else")
        return self

    def __exit__(self, *exc: object) -> None:
        for tool in self.ids:
            sys.monitoring.free_tool_id(tool)


def appenders(log: list[str]) -> None:
    """Three threads append their names on four lines each, once all have started."""
    go = threading.Event()

    def worker(name: str) -> None:
        go.wait()
        log.append(name)
        log.append(name)
        log.append(name)
        log.append(name)

    threads = [threading.Thread(target=worker, args=(n,)) for n in "abc"]
    for t in threads:
        t.start()
    go.set()
    for t in threads:
        t.join()


# --------------------------------------------------------------------- tracing


def test_three_threads_alternate_line_by_line():
    log: list[str] = []
    result, _ = run_once(lambda: appenders(log), RoundRobin())
    assert result.failure is None
    assert log == list("abc" * 4)


def test_without_leaving_the_tracing_state_the_other_threads_run_untraced(monkeypatch):
    """Why :meth:`Scheduler._switch` calls PyThreadState_LeaveTracing/EnterTracing.

    A switch made inside a trace or monitoring callback otherwise resumes the next
    greenlet with CPython's "inside a callback" flag set: it gets no events, so it runs
    to its end without a switch point. If this test fails, CPython or greenlet now keep
    that flag per greenlet and the calls have become unnecessary.
    """
    monkeypatch.setattr(scheduler, "_leave_tracing", lambda tstate: None)
    monkeypatch.setattr(scheduler, "_enter_tracing", lambda tstate: None)
    log: list[str] = []
    run_once(lambda: appenders(log), RoundRobin())
    assert log == list("bbbbccccaaaa")


def test_a_thread_started_after_a_switch_inside_a_callback_is_traced():
    log: list[str] = []

    def program() -> None:
        go = threading.Event()

        def late() -> None:
            log.append("c")
            log.append("c")

        def first() -> None:
            go.wait()
            log.append("a")
            log.append("a")
            log.append("a")

        def second() -> None:
            go.wait()
            t = threading.Thread(target=late, name="late")
            t.start()
            log.append("b")
            t.join()

        threads = [threading.Thread(target=first), threading.Thread(target=second)]
        for t in threads:
            t.start()
        go.set()
        for t in threads:
            t.join()

    result, recorder = run_once(program, RoundRobin())
    assert result.failure is None
    late_steps = [s.lineno for s in recorder.steps if s.name == "late"]
    assert len(late_steps) == 2, recorder.path()  # both lines of late() were switch points
    assert log == list("aaacbc")  # and late() was preempted between its two lines


def test_one_line_loops_give_a_switch_point_per_turn():
    def program() -> None:
        total = 0
        for i in range(50): total += i  # noqa: E701 - one line on purpose
        assert total == sum(range(50))

    result, recorder = run_once(program)
    line = program.__code__.co_firstlineno + 2
    assert sum(1 for s in recorder.steps if s.lineno == line) >= 50


def test_opcode_granularity_switches_inside_a_line():
    """``n += 1`` on one line: only opcode granularity can lose an update there."""

    def program() -> None:
        box = {"n": 0}

        def add() -> None:
            box["n"] += 1

        threads = [threading.Thread(target=add) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert box["n"] == 2, box

    by_line = explore(program, strategy="dfs", runs=2000, seed=0, granularity="line")
    assert by_line.failure is None and by_line.exhausted
    by_access = explore(program, strategy="dfs", runs=2000, seed=0)  # the default: a read and a write
    assert by_access.failure is not None and by_access.failure.preemptions == 1
    by_opcode = explore(program, strategy="dfs", runs=5000, seed=0, granularity="opcode")
    assert by_opcode.failure is not None and "AssertionError" in by_opcode.failure.message
    line_result, _ = run_once(program, granularity=tracing.LINE)
    opcode_result, _ = run_once(program, granularity=tracing.OPCODE)
    assert opcode_result.steps > 2 * line_result.steps


def busy(n: int) -> int:
    total = 0
    for i in range(n):
        total += i
    return total


def test_user_code_running_on_another_os_thread_is_left_alone():
    """Monitoring events are per interpreter: a real thread's lines are no switch points."""

    def program() -> None:
        results: list[int] = []
        threads = [threading.Thread(target=lambda: results.append(busy(20))) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [190, 190]

    quiet = explore(program, runs=60, seed=5, strategy="random")
    stop = threading.Event()
    errors: list[BaseException] = []
    totals: list[int] = []

    def background() -> None:
        try:
            while not stop.is_set():
                totals.append(busy(2000))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    real = threading.Thread(target=background)
    real.start()
    try:
        busy_report = explore(program, runs=60, seed=5, strategy="random")
    finally:
        stop.set()
        real.join()
    assert errors == []
    assert totals and set(totals) == {sum(range(2000))}
    assert busy_report.failure is None and busy_report.steps == quiet.steps


def test_a_tracer_installed_before_the_run_is_back_afterwards():
    calls: list[str] = []

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        calls.append(frame.f_code.co_name)
        return None

    log: list[str] = []
    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        result, _ = run_once(lambda: appenders(log), RoundRobin())
        after = sys.gettrace()
    finally:
        sys.settrace(previous)
    assert after is tracer
    assert log == list("abc" * 4)
    if MONITORING:  # sys.monitoring leaves sys.settrace alone: the tracer saw the threads run
        assert "worker" in calls


# ------------------------------------------------------------ sys.monitoring ids


@needs_monitoring
def test_monitoring_takes_a_free_tool_id_for_the_run_and_frees_it():
    seen: list[list[str | None]] = []

    def program() -> None:
        seen.append([sys.monitoring.get_tool(i) for i in range(6)])

    # Line steps need the tracer; shared-access steps are compiled in and take no tool id.
    assert explore(program, runs=3, granularity="line").failure is None
    assert seen and seen[0][4] == tracing.TOOL_NAME and seen[0].count(tracing.TOOL_NAME) == 1
    assert [sys.monitoring.get_tool(i) for i in tracing.TOOL_IDS] == [None, None]
    seen.clear()
    assert explore(program, runs=3).failure is None
    assert seen and tracing.TOOL_NAME not in seen[0]

    with hold_tool_ids(4):
        seen.clear()
        log: list[str] = []
        run_once(lambda: (appenders(log), program()), RoundRobin())
        assert seen[0][3] == tracing.TOOL_NAME and sys.monitoring.get_tool(4) == "someone else"
        assert log == list("abc" * 4)


@needs_monitoring
def test_with_every_tool_id_taken_settrace_does_the_same_job():
    log: list[str] = []
    before = sys.gettrace()  # coverage's, under pytest --cov
    with hold_tool_ids(*tracing.TOOL_IDS):
        result, _ = run_once(lambda: appenders(log), RoundRobin())
        assert sys.gettrace() is before
    assert result.failure is None and log == list("abc" * 4)


@needs_monitoring
def test_opcode_granularity_without_a_free_tool_id_is_refused_plainly():
    """3.12's and 3.13's ``sys.settrace`` miss opcode events of first calls: no silent fallback."""

    def program() -> None:
        total = 0
        for i in range(5):
            total += i

    with hold_tool_ids(*tracing.TOOL_IDS):
        with pytest.raises(RuntimeError, match="opcode granularity needs a free sys.monitoring tool id"):
            run_once(program, granularity=tracing.OPCODE)
        by_line, _ = run_once(program)
    by_opcode, _ = run_once(program, granularity=tracing.OPCODE)  # the refused run left nothing behind
    assert by_line.steps >= 7 and by_opcode.steps > 3 * by_line.steps


@needs_monitoring
def test_monitoring_and_settrace_give_the_same_steps():
    """Steps mean the same on every version: ``sys.monitoring`` reproduces ``settrace``'s lines."""

    def gen(n: int):
        for i in range(n):
            yield i

    def make_program(early: Iterator[int]) -> Callable[[], None]:
        def program() -> None:
            data: list[int] = list(early)  # resumes a generator started before the run
            lock = threading.Lock()

            def worker(k: int) -> None:
                i = 0
                while i < 3: i += 1  # noqa: E701 - a one-line loop
                for v in gen(3):
                    with lock:
                        data.append(v * k)
                try:
                    {}["missing"]
                except KeyError:
                    data.append(-1)
                squares = [x * x for x in range(3)]
                data.extend(squares)

            threads = [threading.Thread(target=worker, args=(k,)) for k in (1, 2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert len(data) == 17

        return program

    def started() -> Iterator[int]:
        early = gen(4)
        next(early)
        return early

    monitored_result, monitored = run_once(make_program(started()), RoundRobin())
    with hold_tool_ids(*tracing.TOOL_IDS):
        traced_result, traced = run_once(make_program(started()), RoundRobin())
    assert monitored_result.failure is None and traced_result.failure is None
    assert monitored.path() == traced.path()
    assert len(monitored.path()) > 60
    gen_lines = {gen.__code__.co_firstlineno + 1, gen.__code__.co_firstlineno + 2}
    assert sum(1 for _, line in monitored.path()[:10] if line in gen_lines) >= 6  # the early generator's turns


@needs_monitoring
def test_another_tools_events_are_not_disabled_by_ours():
    """Our ``DISABLE`` answers are per tool: a coverage-like tool still sees every line."""
    mon = sys.monitoring
    lines: list[int] = []

    def count_line(code: Any, line: int) -> None:
        if code is busy.__code__:
            lines.append(line)

    mon.use_tool_id(1, "line counter")
    mon.register_callback(1, mon.events.LINE, count_line)
    mon.set_events(1, mon.events.LINE)
    try:
        busy(3)
        before = len(lines)
        report = explore(lambda: busy(3), runs=3)
        during = len(lines) - before
        busy(3)
        after = len(lines) - before - during
    finally:
        mon.set_events(1, 0)
        mon.register_callback(1, mon.events.LINE, None)
        mon.free_tool_id(1)
    assert report.failure is None and report.runs >= 1
    assert before == after >= 5 and during == report.runs * before


# ------------------------------------------------------------------ threads


def no_failure(program: Callable[[], None], **budget: Any) -> None:
    budget.setdefault("runs", 200)
    budget.setdefault("seed", 2)
    budget.setdefault("max_pauses", 0)
    report = explore(program, **budget)
    assert report.failure is None, report.failure.message + "\n" + report.failure.trace
    assert report.uncontrolled is None and report.nondeterministic is None and report.runs > 0


def test_join_with_and_without_timeout_and_is_alive():
    def program() -> None:
        start = time.monotonic()
        slow = threading.Thread(target=time.sleep, args=(5,))
        assert not slow.is_alive()
        slow.start()
        assert slow.is_alive()
        slow.join(1)
        assert slow.is_alive() and time.monotonic() - start == 1
        slow.join(0)
        assert slow.is_alive()
        slow.join()
        assert not slow.is_alive() and time.monotonic() - start == 5
        slow.join()
        slow.join(3)
        assert time.monotonic() - start == 5
        quick = threading.Thread(target=lambda: None)
        quick.start()
        quick.join(timeout=10)
        assert not quick.is_alive() and time.monotonic() - start == 5
        with pytest.raises(RuntimeError):
            threading.current_thread().join()

    no_failure(program)


def test_daemon_threads_left_blocked_end_with_the_run():
    ends: list[float] = []

    def program() -> None:
        forever = threading.Event()
        daemon = threading.Thread(target=forever.wait, daemon=True)
        daemon.start()
        assert daemon.daemon and daemon.is_alive()
        sleeper = threading.Thread(target=time.sleep, args=(100,), daemon=True)
        sleeper.start()
        ends.append(time.monotonic())

    no_failure(program, runs=20)
    assert ends


def test_timer_and_thread_pool():
    def program() -> None:
        fired: list[float] = []
        start = time.monotonic()
        timer = threading.Timer(3, lambda: fired.append(time.monotonic() - start))
        timer.start()
        cancelled = threading.Timer(1, lambda: fired.append(-1))
        cancelled.start()
        cancelled.cancel()
        with ThreadPoolExecutor(max_workers=2) as pool:
            assert sorted(pool.map(lambda x: x * 2, range(5))) == [0, 2, 4, 6, 8]
        timer.join()
        cancelled.join()
        assert fired == [3]

    no_failure(program)


def sleep_two() -> None:
    time.sleep(2)  # looked up when called: the run's virtual sleep


def test_a_thread_made_before_the_run_is_started_under_control():
    """3.13 passes the Thread's own ``_ThreadHandle`` to the start call; 3.11/3.12 do not."""
    made_before = threading.Thread(target=sleep_two)
    seen: list[tuple[bool, float]] = []

    def program() -> None:
        start = time.monotonic()
        made_before.start()
        made_before.join()
        seen.append((made_before.is_alive(), time.monotonic() - start))

    report = explore(program, runs=1)
    assert report.failure is None and report.uncontrolled is None
    assert seen == [(False, 2)]


def test_nothing_is_left_in_threadings_registries_after_runs():
    import concurrent.futures.thread as futures_thread

    def registries() -> tuple[Any, ...]:
        locks = set(getattr(threading, "_shutdown_locks", ()))
        return (dict(threading._active), dict(threading._limbo), locks, dict(futures_thread._threads_queues),
                threading.enumerate(), threading.active_count())

    def program() -> None:
        pool = ThreadPoolExecutor(max_workers=2)
        pool.submit(time.sleep, 1)
        threading.Thread(target=threading.Event().wait, daemon=True).start()
        threading.Thread(target=lambda: None).start()
        blocked = threading.Lock()
        blocked.acquire()
        threading.Thread(target=blocked.acquire, daemon=True).start()
        assert threading.active_count() >= 4

    watchdog.shared().close()  # an earlier test's runner may have left the watching thread running
    before = registries()
    report = explore(program, runs=30, seed=1, max_pauses=0)
    assert report.failure is None
    assert registries() == before


def test_the_interpreter_exits_cleanly_after_runs_that_left_threads_behind(tmp_path):
    """``threading._shutdown`` at exit must not wait for a run's threads (a deadlock left some)."""
    script = tmp_path / "leave.py"
    script.write_text(textwrap.dedent("""
        import threading
        from concurrent.futures import ThreadPoolExecutor
        from interleave import explore

        def program():
            a, b = threading.Lock(), threading.Lock()
            def one():
                with a:
                    with b:
                        pass
            def two():
                with b:
                    with a:
                        pass
            pool = ThreadPoolExecutor(max_workers=1)
            pool.submit(threading.Event().wait, 50)
            threads = [threading.Thread(target=one), threading.Thread(target=two)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

        report = explore(program, runs=500, seed=1)
        print(report.failure.kind if report.failure else "none", threading.active_count())
        """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["deadlock", "1"], done.stdout + done.stderr


# ------------------------------------------------------------------- replay

LOST_UPDATE = """
import threading

def main():
    box = {"n": 0}

    def add():
        for _ in range(2):
            n = box["n"]
            box["n"] = n + 1

    threads = [threading.Thread(target=add) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert box["n"] == 4, f"lost update: {box['n']}"
"""


def _other_version(token: str, python: str) -> str:
    """The same token as made on another version (every field is under the checksum)."""
    return dataclasses.replace(Token.decode(token), python=python).encode()


def test_a_token_from_another_version_replays_exactly_or_says_it_cannot(tmp_path):
    path = tmp_path / "race.py"
    path.write_text(LOST_UPDATE)
    target = f"{path}::main"
    failure = explore(target, runs=2000, seed=3).failure
    assert failure is not None
    other = "399"

    # Same path on this version (only the version field differs): replays exactly.
    outcome = replay(target, _other_version(failure.replay, other))
    assert outcome.failure is not None and outcome.failure.message == failure.message

    # A path that differs, as a real other version's may: refused with a clear message.
    decoded = Token.decode(failure.replay)
    altered = Token(other, decoded.fingerprint, decoded.config, decoded.deviations, decoded.checksum ^ 1,
                    decoded.files).encode()
    with pytest.raises(BadInput, match=rf"made on Python 3\.99 and does not replay the same on 3\.{PYTHON[1:]}"):
        replay(target, altered)
    # A schedule whose decisions are not reached on this version: the same message.
    far = Token(other, decoded.fingerprint, decoded.config,
                decoded.deviations + (Decision(Key(1, 10_000, 0), run_thread(2), True),), decoded.checksum,
                decoded.files).encode()
    with pytest.raises(BadInput, match="made on Python 3.99"):
        replay(target, far)
    # The same breakage on the token's own version keeps its own message.
    with pytest.raises(BadInput, match="no longer fits"):
        replay(target, Token(PYTHON, decoded.fingerprint, decoded.config, decoded.deviations,
                             decoded.checksum ^ 1, decoded.files).encode())


def _interpreters() -> dict[str, str]:
    """Other Python versions (3.11-3.13) on this machine that can import interleave and greenlet."""
    found: dict[str, str] = {}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for minor in (11, 12, 13):
        version = f"3{minor}"
        if version == PYTHON:
            continue
        candidates = [ROOT / ".ci" / f"venv-3.{minor}" / "bin" / "python", shutil.which(f"python3.{minor}")]
        pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
        candidates += sorted(pyenv_root.glob(f"3.{minor}*/bin/python3.{minor}"))
        for candidate in candidates:
            if not candidate or not Path(candidate).exists():
                continue
            check = subprocess.run([str(candidate), "-c", "import greenlet, interleave"], env=env,
                                   capture_output=True, timeout=60)
            if check.returncode == 0:
                found[version] = str(candidate)
                break
    return found


OTHER_PROGRAMS = {
    "lost_update": LOST_UPDATE,
    # A comprehension is its own code object on 3.11 and inlined on 3.12+: paths differ.
    "comprehension": LOST_UPDATE.replace('box["n"] == 4', 'sum([box["n"] for _ in range(1)]) == 4'),
}


def test_tokens_made_by_another_interpreter_replay_exactly_or_refuse(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # failure messages name files relative to the working directory
    others = _interpreters()
    if not others:
        pytest.skip("no other Python 3.11-3.13 with greenlet on this machine (.ci/run makes them)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    outcomes = []
    for name, source in OTHER_PROGRAMS.items():
        path = tmp_path / f"{name}.py"
        path.write_text(source)
        target = f"{path}::main"
        for version, interpreter in others.items():
            made = subprocess.run(
                [interpreter, "-c", "import sys, interleave; f = interleave.explore(sys.argv[1], runs=2000, seed=3)"
                 ".failure; print(f.replay); print(f.message)", target],
                env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path,
            )
            assert made.returncode == 0, made.stderr
            token, message = made.stdout.strip().split("\n", 1)
            assert token.split(".")[1] == version
            try:
                outcome = replay(target, token)
            except BadInput as exc:
                assert f"made on Python 3.{version[1:]} and does not replay the same" in str(exc)
                outcomes.append("refused")
            else:
                assert outcome.failure is not None and outcome.failure.message == message
                outcomes.append("same")
    assert outcomes


raise_signal = signal.raise_signal  # bound here, before any run: the real one, not the run's tripwire


def test_an_error_raised_while_ctrl_c_unwinds_a_thread_is_an_interruption():
    """Ctrl-C landing in threading's thread bootstrap before the thread is registered makes
    its ``finally`` raise ``KeyError`` (seen on 3.13): that is the interruption, no finding."""

    def program() -> None:
        def cut_short() -> None:
            try:
                raise_signal(signal.SIGINT)  # a real Ctrl-C (a KeyboardInterrupt raised by the program is a finding)
            finally:
                {}[threading.get_ident()]  # what threading._delete does then

        t = threading.Thread(target=cut_short)
        t.start()
        t.join()

    report = explore(program, runs=5)
    assert report.interrupted and report.failure is None
