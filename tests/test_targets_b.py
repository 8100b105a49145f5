"""targets/follower_sync.py (ZOOKEEPER-4685, -4646) and targets/reconnect_storm.py (ZOOKEEPER-801).

Each buggy variant must be found by a seeded, bounded exploration and fail with its own
invariant; each fixed variant must survive the same kind of budget (for the storm, a seed
whose first runs include pauses, and one run with the pause forced). One replay token
makes the round trip.
"""

from __future__ import annotations

import functools
import importlib
import sys
from pathlib import Path

import pytest

import interleave

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ROOT / "targets"
FOLLOWER_SYNC = str(TARGETS / "follower_sync.py")
RECONNECT_STORM = str(TARGETS / "reconnect_storm.py")
SHRINK_TIME = 3.0  # shrinking is not what these tests are about


@pytest.mark.parametrize(
    "variant, invariant",
    [("main", "LeaderShutdown"), ("lost_commit", "LostCommit")],
)
def test_follower_sync_bugs_are_found(variant: str, invariant: str) -> None:
    report = interleave.explore(f"{FOLLOWER_SYNC}::{variant}", runs=300, seed=1, shrink_time=SHRINK_TIME)
    assert report.failure is not None, f"{variant}: no failure in {report.runs} runs"
    assert report.failure.kind == "exception"
    assert report.failure.message.startswith(invariant), report.failure.message
    assert report.failure.preemptions >= 1  # the default order is correct: it takes a decision


def test_follower_sync_fixed_survives() -> None:
    report = interleave.explore(f"{FOLLOWER_SYNC}::fixed", runs=120, seed=1)
    assert report.failure is None, report.failure and report.failure.message
    assert report.runs == 120


def test_follower_sync_replay_round_trip() -> None:
    target = f"{FOLLOWER_SYNC}::main"
    report = interleave.explore(target, runs=300, seed=2, shrink_time=SHRINK_TIME)
    assert report.failure is not None
    outcome = interleave.replay(target, report.failure.replay)
    assert outcome.failure is not None
    assert outcome.failure.message == report.failure.message
    assert outcome.preemptions == report.failure.preemptions


def test_reconnect_storm_main_is_found() -> None:
    # No shrinking: one replay of this failure takes about 15 s, and the test asks for the failure, not its size.
    report = interleave.explore(f"{RECONNECT_STORM}::main", runs=6, seed=1, shrink_time=0)
    assert report.failure is not None, f"no failure in {report.runs} runs"
    assert report.failure.kind == "exception"
    assert report.failure.message.startswith("NoRecovery"), report.failure.message


def test_reconnect_storm_fixed_survives_exploration() -> None:
    # Seed 1's first four runs pause the server three times (measured when the test was written).
    report = interleave.explore(f"{RECONNECT_STORM}::fixed", runs=4, seed=1)
    assert report.failure is None, report.failure and report.failure.message


@pytest.fixture(scope="module")
def storm_model():
    sys.path.insert(0, str(TARGETS))
    try:
        yield importlib.import_module("reconnect_storm")
    finally:
        sys.path.remove(str(TARGETS))


def test_reconnect_storm_backoff_recovers_from_a_forced_pause(storm_model) -> None:
    report = interleave.explore(
        functools.partial(storm_model.simulate, True, 52), runs=1, strategy="dfs",
        max_steps=storm_model.__interleave__["max_steps"],
    )
    assert report.failure is None, report.failure and report.failure.message
