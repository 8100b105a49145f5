"""Replay tokens: every field under the checksum, the files a run executed, and draws of
``random`` as recorded choices."""

from __future__ import annotations

import itertools
import re
import sys
import textwrap
import zlib

import pytest

from interleave import BadInput, Diverged, explore, replay
from interleave import schedule
from interleave.decisions import Draw, run_thread
from interleave.schedule import Token

RACE = """
import threading
import HELPER as helper

box = [0]

def main():
    box[0] = 0
    threads = [threading.Thread(target=helper.add, args=(box,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert box[0] == helper.EXPECTED  # no message: it would be one more read, when failing only
"""

HELPER = """
EXPECTED = 2

def add(box):
    value = box[0]
    box[0] = value + 1
"""


def write(tmp_path, name: str, source: str):
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


_helpers = itertools.count()


@pytest.fixture
def race(tmp_path):
    """A race in a helper module of its own (a name no other test imported)."""
    name = f"helper_{next(_helpers)}"
    write(tmp_path, f"{name}.py", HELPER)
    path = write(tmp_path, "race.py", RACE.replace("HELPER", name))
    failure = explore(f"{path}::main", runs=500).failure
    assert failure is not None
    return tmp_path / f"{name}.py", f"{path}::main", failure.replay


def edit(helper, old: str, new: str) -> None:
    """Edit a helper module, and forget it was imported, as a new process would."""
    helper.write_text(helper.read_text().replace(old, new))
    sys.modules.pop(helper.stem, None)


# The round trip of every field, as a property: tests/test_properties.py.


def test_the_examples_tokens_stay_short(race):
    _, _, token = race
    assert len(token) < 80, token


@pytest.mark.parametrize("field, altered", [
    (1, lambda f: "399"),                                   # the python version
    (2, lambda f: f[:-1] + ("0" if f[-1] != "0" else "1")),  # the fingerprint
    (3, lambda f: "aaaaa" if f == "0" else "0"),             # the files' digests
    (4, lambda f: "l5000p2f2r2"),                            # the configuration
    (5, lambda f: f[:-1] + ("a" if f[-1] != "a" else "b")),  # the deviations
    (6, lambda f: ("b" if f[0] != "b" else "c") + f[1:]),   # the checksum itself
])
def test_a_token_with_any_field_altered_is_refused_as_corrupt(race, field, altered):
    _, target, token = race
    parts = token.split(".")
    parts[field] = altered(parts[field])
    tampered = ".".join(parts)
    assert tampered != token
    with pytest.raises(BadInput, match="corrupt replay token"):
        replay(target, tampered)


def as_format_3(token: str) -> str:
    """The token as format 3 wrote it: each option without its cost bit, and its own checksum."""
    version, *fields, sums = token.split(".")
    numbers = schedule._read_varints(schedule._unb32(fields[4])) if fields[4] != "0" else []
    numbers[3::8] = [n >> 1 for n in numbers[3::8]]
    head = ".".join(["3", *fields[:4], schedule._b32(schedule._varints(numbers)) or "0"]) + "."
    path_crc = schedule._unb32(sums)[:4]
    return head + schedule._b32(path_crc + zlib.crc32(head.encode() + path_crc).to_bytes(4, "big"))


def test_a_token_carries_each_decisions_cost_and_a_format_3_token_is_still_replayed(race):
    _, target, token = race
    decoded = Token.decode(token)
    assert any(d.paid for d in decoded.deviations)  # the lost update needs a preemption
    old = Token.decode(as_format_3(token))
    assert [(d.key, d.option) for d in old.deviations] == [(d.key, d.option) for d in decoded.deviations]
    assert old.places == decoded.places
    # Format 3 cannot tell a free switch to another thread from a preemption: taken as paid.
    assert all(d.paid for d in old.deviations if d.option != run_thread(d.key.thread))
    again, before = replay(target, as_format_3(token)), replay(target, token)
    assert again.failure is not None and before.failure is not None
    assert (again.failure.message, again.steps) == (before.failure.message, before.steps)


def test_replay_names_a_helper_module_that_changed_since_the_token(race):
    helper, target, token = race
    assert replay(target, token).changed == []
    # Only a constant that no step of the run executes: the import alone makes it part of the run.
    edit(helper, "EXPECTED = 2", "EXPECTED = 1")
    outcome = replay(target, token)
    assert outcome.failure is None  # the same schedule no longer fails...
    assert [name.rsplit("/", 1)[-1] for name in outcome.changed] == [helper.name]  # ...and replay says why


def test_a_schedule_outlives_comments_prints_and_blank_lines(race):
    helper, target, token = race
    exact = replay(target, token)
    assert exact.failure is not None and not exact.by_place
    # Each added line moves the others, and the print is one more step: one more read of box[0].
    edit(helper, "def add(box):\n    value = box[0]\n",
         "# a comment\n\ndef add(box):\n    print('box is', box[0])  # debugging\n\n"
         "    value = box[0]  # read it\n")
    outcome = replay(target, token)
    assert outcome.by_place and outcome.diverged is None
    assert outcome.failure is not None and outcome.failure.message == exact.failure.message
    assert [name.rsplit("/", 1)[-1] for name in outcome.changed] == [helper.name]
    assert preemptions(outcome.trace) == preemptions(exact.trace)


def preemptions(trace: str) -> list[str]:
    """The trace's preemption lines, but for their line numbers."""
    return [re.sub(r":\d+\)", ")", line) for line in trace.splitlines() if ">> preemption" in line]


def test_a_schedule_that_no_longer_fits_says_where_it_diverged(race):
    helper, target, token = race
    before = (helper.read_text().splitlines().index("    box[0] = value + 1") + 1)
    # The line the schedule switched at is gone: the read and the write are one line now.
    edit(helper, "    value = box[0]\n    box[0] = value + 1\n", "    box[0] = box[0] + 1\n")
    with pytest.raises(Diverged, match=rf"changed since the token was made \(.*{helper.name}\).*diverged at "
                                       rf"decision 1 of \d+: the schedule expected Thread-\d+ \(add\) at "
                                       rf"\S*{helper.name}:{before}, and the run never came there"):
        replay(target, token)
    outcome = replay(target, token, go_on=True)  # as far as it fits, then the default order
    assert outcome.diverged is not None and outcome.diverged.startswith("diverged at decision 1")
    assert outcome.failure is None


COIN = """
import random
import threading

box = [0]
lock = threading.Lock()

def add():
    if random.random() < 0.5:  # the unlocked path, taken only on a low draw
        value = box[0]
        box[0] = value + 1
    else:
        with lock:
            box[0] += 1

def main():
    box[0] = 0
    threads = [threading.Thread(target=add) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    noise = [random.random() for _ in range(3)]  # drawn, never matters
    assert box[0] == 2, (box[0], noise)
"""


@pytest.mark.parametrize("strategy", ["portfolio", "random"])
def test_a_race_that_needs_a_low_random_draw_is_found_and_replayed(tmp_path, strategy):
    import random

    seeded = random.Random(0)
    assert seeded.random() > 0.5 and seeded.random() > 0.5  # the seeded run never takes the unlocked path
    path = write(tmp_path, "coin.py", COIN)
    target = f"{path}::main"
    for seed in range(3):  # found within the budget whatever the seed; the last one examined below
        report = explore(target, runs=3000, seed=seed, strategy=strategy)
        failure = report.failure
        assert failure is not None and "AssertionError: (1, " in failure.message, seed
        drawn = [d for d in Token.decode(failure.replay).deviations if isinstance(d.option, Draw)]
        assert len(drawn) == 1 and failure.draws == 1  # shrunk to the one draw the race needs
        assert "random() gives 0.0 in place of the seeded 0.84" in failure.trace or \
            "random() gives 0.0 in place of the seeded 0.75" in failure.trace
    again = explore(target, runs=3000, seed=seed, strategy=strategy).failure  # the same seed: the same search
    assert again is not None and (again.run, again.replay) == (failure.run, failure.replay)
    shown = [e.what for e in failure.recorder.events if e.kind == "draw"]
    for _ in range(2):  # the same draws, every replay
        again = replay(target, failure.replay)
        assert again.failure is not None and again.failure.message == failure.message
        assert [e.what for e in again.recorder.events if e.kind == "draw"] == shown


def test_draws_the_program_seeds_itself_are_left_alone(tmp_path):
    own = COIN.replace("def add():\n", "def add():\n    rng = random.Random(7)\n") \
        .replace("random.random() < 0.5", "rng.random() < 0.2")
    seeded = COIN.replace("    box[0] = 0\n", "    box[0] = 0\n    random.seed(2)\n")
    import random

    assert random.Random(7).random() > 0.2
    generator = random.Random(2)
    assert generator.random() > 0.5 and generator.random() > 0.5
    for source in (own, seeded):
        path = write(tmp_path, "own.py", source)
        report = explore(f"{path}::main", strategy="dfs", max_preemptions=2, runs=20_000)
        assert report.failure is None and report.exhausted


def test_choices_and_shuffles_are_draws_too(tmp_path):
    path = write(tmp_path, "pick.py", """
        import random
        def main():
            order = list(range(5))
            random.shuffle(order)
            assert random.choice("abcdefg") != "a" or order[0] != 4, order
        """)
    report = explore(f"{path}::main", strategy="dfs", max_preemptions=2, runs=5000)
    assert report.failure is not None
    assert report.failure.draws == 2


def test_a_program_can_keep_its_draws_as_seeded(tmp_path):
    path = write(tmp_path, "coin.py", COIN + '\n__interleave__ = {"max_draws": 0}\n')
    report = explore(f"{path}::main", strategy="dfs", max_preemptions=2, runs=20_000)
    assert report.failure is None and report.exhausted
