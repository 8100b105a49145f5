"""The benchmark still works: its quick mode runs end to end and writes sane results.

This checks the benchmark's plumbing, not interleave's speed (timing goals live in
``benchmarks/`` as ratios measured in one run, never as timed tests).
"""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from interleave.strategies import NAMES as STRATEGY_NAMES

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--quick", "--no-peers", "--programs", "lost_update,two_threads_20",
         "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads((out / "results.json").read_text()), (out / "RESULTS.md").read_text()


def test_interleave_finds_every_bug_and_reports_its_shrunk_size(quick):
    results, _ = quick
    for name in ("lost_update", "two_threads_20"):
        trials = results["ours"]["main"][name]
        assert len(trials) == results["budget"]["seeds"]
        for t in trials:
            assert t["found"] and t["kind"] == "exception", t
            assert 0 < t["ttff_s"] <= t["search_s"] + 1e-9
            assert t["failing_run"] >= 1
            assert 1 <= t["preemptions"] <= t["original_preemptions"]
            assert 0 < t["shrunk_steps"]


def test_correct_twins_show_no_failure_and_positive_throughput(quick):
    results, _ = quick
    for name in ("lost_update", "two_threads_20"):
        row = results["ours"]["fixed"][name]
        assert row["failure"] is None and "error" not in row
        assert row["runs"] > 0 and row["runs_per_s"] > 0 and row["steps_per_s"] > 0
        assert math.isclose(row["steps_per_run"] * row["runs"], row["steps"])
    by_strategy = {r["strategy"]: r for r in results["ours"]["throughput"]["two_threads_20"]}
    assert set(by_strategy) == set(STRATEGY_NAMES)


def test_strategy_table_and_stress_rows_are_complete(quick):
    results, _ = quick
    for name in ("lost_update", "two_threads_20"):
        table = results["ours"]["strategies"][name]
        assert set(table) == set(STRATEGY_NAMES)
        assert all(t["found"] for rows in table.values() for t in rows)
        for mode in ("default", "1us"):
            trials = results["stress"][name][mode]
            assert trials and all("reruns" in t or "skipped" in t for t in trials), trials


def test_results_file_has_every_section(quick):
    results, text = quick
    assert results["environment"]["python"] and results["environment"]["quick"] is True
    for heading in ("# Benchmark results", "## Goals: where we stand", "## interleave on the buggy programs",
                    "## interleave on the correct twins", "## Time to first failure",
                    "## Strategy comparison"):
        assert heading in text
    assert "| lost_update |" in text and "| two_threads_20 |" in text
    assert "Peers: not measured in this run." in text


def test_access_cost_prints_line_and_access_rows_side_by_side():
    proc = subprocess.run([sys.executable, str(BENCH / "access_cost.py"), "--quick", "--json"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    rows = {r["program"]: r for r in out["rows"]}
    assert set(rows) == {"long_run", "lost_update", "locals_only"}
    for row in rows.values():
        for column in ("old line", "new line", "new access"):
            assert row[column]["runs_per_s"] > 0 and row[column]["steps_per_run"] > 0, (row["program"], column)
    # the columns ran what they say: lines as the steps give the same step counts old and new,
    # and a thread's locals are no steps of its own under access granularity
    assert rows["long_run"]["old line"]["steps_per_run"] == rows["long_run"]["new line"]["steps_per_run"]
    assert rows["locals_only"]["new access"]["steps_per_run"] < rows["locals_only"]["new line"]["steps_per_run"] / 5
    assert len(out["verdicts"]) == 3


def test_a_new_results_file_keeps_the_access_cost_section():
    sys.path.insert(0, str(BENCH))
    try:
        import report
    finally:
        sys.path.remove(str(BENCH))
    previous = "# Benchmark results\n\n## Per-step costs\n\nold\n\n## Shared-access steps: cost\n\n| a | b |\n"
    assert report.kept_section(previous) == "\n## Shared-access steps: cost\n\n| a | b |\n"
    assert report.kept_section("# Benchmark results\n\n## Per-step costs\n") == ""
