"""Exploring in worker processes (interleave.workers) and on a Dask cluster."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from interleave import explore, replay
from interleave.campaign import SLOTS, InProcess, Job, run_config, search
from interleave.cli import cli
from interleave.program import BadInput, load

LOCKED_COUNTER = """
    import threading

    def main():
        lock = threading.Lock()
        box = [0]
        seen = []

        def work():
            with lock:
                n = box[0]
                box[0] = n + 1
            seen.append(box[0])

        threads = [threading.Thread(target=work) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert box[0] == 2
"""

RARE_LOST_UPDATE = """
    import threading

    def main():
        box = [0]

        def work():
            n = box[0]
            box[0] = n + 1

        threads = [threading.Thread(target=work) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert box[0] != 1, "two updates lost"

    def fixed():
        box = [0]
        lock = threading.Lock()

        def work():
            with lock:
                box[0] += 1

        threads = [threading.Thread(target=work) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
"""

TWO_BUGS = """
    import threading

    def main():
        box = [0]

        def add(k):
            n = box[0]
            box[0] = n + k

        threads = [threading.Thread(target=add, args=(k,)) for k in (1, 10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if box[0] == 1:
            raise ValueError("the 10 was lost")
        if box[0] == 10:
            raise KeyError("the 1 was lost")
"""

DIES_SOMETIMES = """
    import ctypes
    import threading

    def main():
        box = [0]

        def work():
            n = box[0]
            box[0] = n + 1

        threads = [threading.Thread(target=work) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if box[0] == 1:  # only when two updates are lost: a few runs in a hundred
            ctypes.CDLL(None)._exit(3)  # the C library's: os._exit only ends the run
"""


@pytest.fixture
def program(tmp_path):
    def write(source: str, name: str = "target") -> str:
        path = tmp_path / f"{name}.py"
        path.write_text(textwrap.dedent(source))
        return str(path)

    return write


def _slot_schedules(target: str, slots: int, strategy: str = "dfs") -> list[list[int]]:
    """Each slot's run schedules (hashes of their deviations), searched in this process."""
    prog = load(target)
    out = []
    for slot in range(slots):
        job = Job(program=prog, spec=None, fingerprint=prog.fingerprint, config=run_config(prog, None, None, None, "line"),
                  strategy=strategy, seed=0, depth=3, max_preemptions=2, own=(slot,), slots=slots, runs=None,
                  time_limit=None, keep_going=True)
        [result] = search(job, InProcess(slots=slots))
        assert result.exhausted and result.enumeration.exhausted
        out.append(list(result.schedules))
    return out


@pytest.mark.parametrize("slots", [2, 3])
def test_enumeration_split_runs_exactly_the_schedules_of_one_process(program, slots):
    target = program(LOCKED_COUNTER)
    [alone] = _slot_schedules(target, 1)
    split = _slot_schedules(target, slots)
    together = [s for share in split for s in share]
    assert len(alone) > 50 and len(set(alone)) == len(alone)
    assert Counter(together) == Counter(alone)  # the same schedules, none twice
    assert all(len(share) > len(alone) // (4 * slots) for share in split)  # and really split


def test_enumeration_split_among_more_shares_than_subtrees(program):
    target = program(LOCKED_COUNTER)
    [alone] = _slot_schedules(target, 1)
    split = _slot_schedules(target, 64)  # each share exhausted, none crashing on an empty deal
    assert Counter(s for share in split for s in share) == Counter(alone)
    assert [] in split  # fewer bound-1 subtrees than shares: some were dealt none


def test_sixty_four_workers_give_the_verdict_of_one(program):
    target = program(LOCKED_COUNTER)
    one = explore(target, strategy="dfs", runs=100_000)
    many = explore(target, strategy="dfs", runs=100_000, workers=64)
    assert not many.worker_deaths and many.workers == SLOTS  # no more processes than slots
    assert (many.exhausted, many.bound, many.runs, many.failure) == (one.exhausted, one.bound, one.runs, None)


def test_enumeration_in_worker_processes_is_still_exhaustive(program):
    target = program(LOCKED_COUNTER)
    one = explore(target, strategy="dfs", runs=100_000)
    two = explore(target, strategy="dfs", runs=100_000, workers=2)
    assert one.exhausted and two.exhausted
    assert (two.runs, two.distinct_schedules, two.bound, two.steps) == (one.runs, one.runs, one.bound, one.steps)
    assert two.workers == 2 and two.failure is None
    # What the threads did comes back from the workers too (the pytest plugin's health warnings read it).
    assert one.threads_started == 2 and one.thread_user_steps > 0
    assert (two.threads_started, two.thread_user_steps) == (one.threads_started, one.thread_user_steps)


def test_sampling_split_runs_the_same_run_indices_as_one_process(program):
    target = program(RARE_LOST_UPDATE) + "::fixed"
    one = explore(target, strategy="random", runs=301, seed=4)
    three = explore(target, strategy="random", runs=301, seed=4, workers=3)
    assert three.runs == one.runs == 301
    assert (three.steps, three.distinct_schedules) == (one.steps, one.distinct_schedules)


def test_same_seed_and_workers_give_the_same_failure_and_token(program):
    target = program(RARE_LOST_UPDATE)
    # Time enough for the shrinking to end by itself: one cut short by its time gives another token.
    first = explore(target, strategy="random", runs=2000, seed=7, workers=2, shrink_time=60)
    again = explore(target, strategy="random", runs=2000, seed=7, workers=2, shrink_time=60)
    assert first.failure is not None and first.failure.run > 2  # both workers ran before it was found
    assert first.failure.minimal and again.failure.minimal
    assert first.runs < 2000  # the first failure stopped every worker
    assert (again.failure.replay, again.failure.run, again.runs, again.steps, again.distinct_schedules) == \
        (first.failure.replay, first.failure.run, first.runs, first.steps, first.distinct_schedules)
    assert first.runs == first.failure.run  # counts stop at the failing run: keys 0..run-1
    replayed = replay(target, first.failure.replay)  # found by a worker, replayed in this process
    assert replayed.failure is not None and replayed.failure.message == first.failure.message


def test_all_keeps_going_and_reports_each_distinct_failure_once(program):
    target = program(TWO_BUGS)
    first_only = explore(target, strategy="random", runs=400, seed=1, workers=2, shrink_time=5)
    every = explore(target, strategy="random", runs=400, seed=1, workers=2, keep_going=True, shrink_time=5)
    assert len(first_only.failures) == 1 and first_only.runs < 400
    assert every.runs == 400
    assert sorted(f.message.split(":")[0] for f in every.failures) == ["KeyError", "ValueError"]
    assert every.failure == every.failures[0] and every.failure.run <= every.failures[1].run
    for failure in every.failures:
        assert replay(target, failure.replay).failure.message == failure.message


def test_a_dead_worker_is_reported_replaced_and_its_run_skipped(program):
    target = program(DIES_SOMETIMES)
    report = explore(target, strategy="random", runs=200, seed=0, workers=2)
    assert report.worker_deaths
    for death in report.worker_deaths:
        assert re.fullmatch(r"worker [01] died \(exit code 3\) while running run \d+ of slot \d+ \(key \d+, random "
                            r"walk, seed 0\); a new worker took over its slots and skipped that run", death), death
    # The campaign went on without those runs.
    # (a death at a key past the budget's runs costs nothing)
    assert 200 - len(report.worker_deaths) <= report.runs < 200 and report.failure is None


def test_a_worker_death_in_the_enumeration_makes_it_not_exhaustive(program):
    target = program(DIES_SOMETIMES)
    report = explore(target, strategy="dfs", runs=10_000, max_preemptions=1, workers=2)
    assert report.worker_deaths and "enumeration" in report.worker_deaths[0]
    assert not report.exhausted and report.bound is None


def test_a_callable_target_runs_in_forked_workers():
    box = {"seen": 0}

    def racy() -> None:
        def work() -> None:
            n = box["seen"]
            box["seen"] = n + 1

        box["seen"] = 0
        threads = [threading.Thread(target=work) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert box["seen"] == 2

    report = explore(racy, strategy="random", runs=500, seed=3, workers=2, shrink_time=5)
    assert report.failure is not None and report.failure.kind == "exception"


def test_cli_workers_and_all(program, tmp_path):
    target = program(TWO_BUGS)
    runner = CliRunner()
    bad = runner.invoke(cli, ["explore", target, "--workers", "zero"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output and "'zero' is neither" in bad.output
    report = str(tmp_path / "report.json")
    found = runner.invoke(cli, ["explore", target, "--workers", "2", "--all", "--runs", "300", "--strategy", "random",
                                "--shrink-time", "5", "--json", report])
    assert found.exit_code == 1, found.output
    assert "interleave: 2 distinct failures in 300 runs" in found.output and "2 workers" in found.output
    assert found.output.count("Replay it:") == 2
    written = json.loads(Path(report).read_text())
    assert written["workers"] == 2 and [f["replay"] for f in written["failures"]][0] == written["failure"]["replay"]


def test_dask_cluster_runs_the_same_campaign(program, tmp_path):
    pytest.importorskip("distributed", reason="the distributed extra is not installed (pip install "
                                              "'interleave-sct[distributed]')")
    target = program(RARE_LOST_UPDATE)
    dies = program(DIES_SOMETIMES, "dies")
    local = explore(target, strategy="random", runs=2000, seed=7, workers=2, shrink_time=5)
    exhaustive = explore(target + "::fixed", strategy="dfs", runs=100_000)
    # The cluster lives in a process of its own, so what earlier tests left in this one
    # (threads, patched modules) cannot stall its shutdown; a stall fails the test.
    script = tmp_path / "on_dask.py"
    script.write_text(textwrap.dedent(f"""
        import json
        import dask
        from distributed import Client, LocalCluster
        from interleave import explore

        if __name__ == "__main__":
            # Daemonic Dask workers could not start the process each slot is searched in.
            with dask.config.set({{"distributed.worker.daemon": False}}), \\
                    LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \\
                    Client(cluster) as client:
                on_dask = explore({target!r}, strategy="random", runs=2000, seed=7, workers=client, shrink_time=5)
                enumerated = explore({target + "::fixed"!r}, strategy="dfs", runs=100_000,
                                     workers=cluster.scheduler_address)
                dying = explore({dies!r}, strategy="random", runs=200, seed=0, workers=client)
            print(json.dumps({{
                "workers": on_dask.workers, "replay": on_dask.failure.replay, "run": on_dask.failure.run,
                "runs": on_dask.runs, "enumerated": [enumerated.exhausted, enumerated.runs, enumerated.distinct_schedules],
                "dying": [dying.runs, dying.worker_deaths],
            }}))
        """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    on_dask = json.loads(done.stdout.strip().splitlines()[-1])
    assert on_dask["workers"] == 2
    assert (on_dask["replay"], on_dask["run"], on_dask["runs"]) == (local.failure.replay, local.failure.run, local.runs)
    exhausted, runs, distinct = on_dask["enumerated"]
    assert exhausted and runs == distinct == exhaustive.runs
    dying_runs, deaths = on_dask["dying"]
    here = explore(dies, strategy="random", runs=200, seed=0, workers=2)
    assert deaths and (dying_runs, deaths) == (here.runs, here.worker_deaths)  # caught and replaced inside the task


def test_spawned_workers_give_what_forked_ones_give(program, monkeypatch):
    import interleave.workers as workers

    target = program(RARE_LOST_UPDATE)
    forked = explore(target, strategy="random", runs=2000, seed=7, workers=2, shrink_time=5)
    monkeypatch.setattr(workers, "_start_method", lambda program: "spawn")  # as where fork does not exist
    spawned = explore(target, strategy="random", runs=2000, seed=7, workers=2, shrink_time=5)
    assert (spawned.failure.replay, spawned.runs) == (forked.failure.replay, forked.runs)
    with pytest.raises(BadInput, match="give it as PATH::FUNC"):
        explore(lambda: None, runs=10, workers=2)


HASH_ORDERED = """
    import threading

    def main():
        box = []

        def add(name):
            box.append(name)

        names = {"ant", "bee", "cat", "dog", "eel", "fox", "gnu", "hen", "jay", "kid", "owl", "yak"}
        threads = [threading.Thread(target=add, args=(name,)) for name in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert box[0] < box[-1], box
"""


def test_spawned_workers_agree_on_the_order_of_a_set_of_strings(program, monkeypatch):
    import interleave.workers as workers

    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    monkeypatch.setattr(workers, "_start_method", lambda program: "spawn")
    target = program(HASH_ORDERED)
    first = explore(target, strategy="random", runs=400, seed=2, workers=2, shrink_time=5)
    again = explore(target, strategy="random", runs=400, seed=2, workers=2, shrink_time=5)
    assert first.failure is not None and first.failure.kind == "exception"
    assert (again.failure.replay, again.failure.message) == (first.failure.replay, first.failure.message)
