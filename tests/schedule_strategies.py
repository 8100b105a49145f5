"""Hypothesis strategies for schedules and replay tokens, in one place for every test.

When the shape of a decision changes (interleave.decisions.Decision), this module is the
one to adapt: :data:`deviations` makes arbitrary ones.
"""

from __future__ import annotations

from hypothesis import strategies as st

from interleave.decisions import DRAW_SUB, FAULT_SUB, PAUSE, Decision, Draw, Fault, Key, run_thread
from interleave.runner import RunConfig
from interleave.places import TEXT_BITS, Place
from interleave.schedule import FILE_DIGEST_BYTES, Token


@st.composite
def deviations(draw: st.DrawFn) -> Decision:
    """A decision of any kind: a thread to run or a pause, a fault's option, a draw's value."""
    thread, steps = draw(st.integers(0, 300)), draw(st.integers(0, 10**6))
    kind = draw(st.sampled_from(["thread", "fault", "draw"]))
    sub = draw(st.integers(0, 5))
    if kind == "thread":
        key = Key(thread, steps, sub)
        option = draw(st.one_of(st.just(PAUSE), st.integers(0, 300).map(run_thread)))
    elif kind == "fault":
        key, option = Key(thread, steps, FAULT_SUB + sub), Fault(draw(st.integers(1, 40)))
    else:
        key, option = Key(thread, steps, DRAW_SUB + sub), Draw(draw(st.integers(1, 40)))
    return Decision(key, option, draw(st.booleans()))


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

places = st.builds(Place, text=st.integers(0, 2**TEXT_BITS - 1), seen=st.integers(0, 10**5),
                   line=st.integers(0, 10**5), file=st.integers(-1, 6))


@st.composite
def tokens_drawn(draw: st.DrawFn) -> Token:
    """A token of any schedule, with a place for each decision or (as a token made by hand) for none."""
    schedule = tuple(draw(st.lists(deviations(), max_size=12)))
    placed = draw(st.booleans())
    return Token(
        python=draw(st.sampled_from(["311", "312", "313", "399"])),
        fingerprint=draw(st.text("0123456789abcdef", min_size=8, max_size=8)),
        config=draw(st.one_of(st.just(RunConfig()), run_configs)),
        deviations=schedule,
        checksum=draw(st.integers(0, 2**32 - 1)),
        files=draw(st.frozensets(st.binary(min_size=FILE_DIGEST_BYTES, max_size=FILE_DIGEST_BYTES), max_size=6)),
        places=tuple(draw(places) for _ in schedule) if placed else (),
    )


tokens = tokens_drawn()
