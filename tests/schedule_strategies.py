"""Hypothesis strategies for schedules and replay tokens, in one place for every test.

When the shape of a decision changes (interleave.scheduler.Deviation), this module is the
one to adapt: :data:`deviations` makes arbitrary ones, :func:`as_decoded` says what a
token keeps of one.
"""

from __future__ import annotations

from hypothesis import strategies as st

from interleave.runner import RunConfig
from interleave.schedule import FILE_DIGEST_BYTES, Token
from interleave.scheduler import DRAW_SUB, FAULT_SUB, JUMP, Deviation

#: Options as the scheduler gives them: thread indices, JUMP, fault option k as ``-2 - k``.
choices = st.one_of(st.integers(0, 300), st.just(JUMP), st.integers(-2 - 40, -2))

#: Sub-decisions of each kind: scheduling (from 0), faults and draws (keyed apart).
subs = st.one_of(st.integers(0, 5), st.integers(FAULT_SUB, FAULT_SUB + 5), st.integers(DRAW_SUB, DRAW_SUB + 5))

deviations = st.builds(
    Deviation,
    thread=st.integers(0, 300),
    steps=st.integers(0, 10**6),
    sub=subs,
    choice=choices,
    cost=st.integers(0, 1),
)


def as_decoded(deviation: Deviation) -> Deviation:
    """What a token gives back of a deviation: its key and choice; the scheduler works out its cost again."""
    return deviation._replace(cost=0)


#: Installed modules, packages or paths (``--include``): never empty, never holding a NUL.
included = st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), min_size=1, max_size=20)

run_configs = st.builds(
    RunConfig,
    max_steps=st.integers(1, 10**7),
    max_pauses=st.integers(0, 9),
    max_faults=st.integers(0, 9),
    granularity=st.sampled_from(["access", "line", "opcode"]),
    max_draws=st.integers(0, 9),
    include=st.lists(included, max_size=3).map(tuple),
    races=st.booleans(),
)

tokens = st.builds(
    Token,
    python=st.sampled_from(["311", "312", "313", "399"]),
    fingerprint=st.text("0123456789abcdef", min_size=8, max_size=8),
    config=st.one_of(st.just(RunConfig()), run_configs),
    deviations=st.lists(deviations, max_size=12).map(tuple),
    checksum=st.integers(0, 2**32 - 1),
    files=st.frozensets(st.binary(min_size=FILE_DIGEST_BYTES, max_size=FILE_DIGEST_BYTES), max_size=6),
)
