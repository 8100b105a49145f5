"""Draws of the shared ``random`` generator as scheduler choices.

Every module-level function of ``random`` (random, randint, randrange, choice, choices,
shuffle, sample, uniform, gauss, getrandbits, randbytes...) draws from one generator,
``random._inst``, and all of them go through three of its methods: ``random()``,
``getrandbits(k)`` and ``_randbelow(n)``. For the length of a run those three are replaced
(on the instance, and where the module or the user's modules bound them by name), and
the generator starts from the state ``random.seed(0)`` gives, as it always did.

Each draw is then a decision of the scheduler (:meth:`Scheduler.draw_choice`). The
default is the value the seeded generator gives: a run that changes nothing draws
exactly what every run drew before, and that costs nothing against any bound. The
alternatives are a few values spread over the draw's range:

* ``random()``: 0.0, 0.5 and the largest float below 1, so a branch on a threshold
  (``random() < p``) goes both ways whatever ``p`` is;
* ``_randbelow(n)`` (randrange, randint, choice, shuffle, sample): 0, ``n // 2``, ``n - 1``
  (the first, middle and last element);
* ``getrandbits(k)`` called directly: 0, ``2**(k-1)``, ``2**k - 1``.

A changed draw is a deviation like a fault: the token carries it, replay returns the same
value, it counts against ``max_draws`` and costs one against the preemption bound, and
shrinking removes it, which moves the draw back to its seeded value (so a shrunk schedule
keeps only the draws the failure needs). The generator advances as for the seeded draw
whatever value is returned, so the other draws of the run keep their values when one
changes, and the keys of later decisions stay put.

A program that seeds the shared generator itself during a run (``random.seed(...)`` or
``random.setstate``) gets exactly the sequence it asked for: from then on in that run its
draws are not choices. ``random.Random`` instances the program makes are its own and are
never touched.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, TypeVar

from .events import Drew
from .scheduler import active

#: The generator behind the module-level functions, and its class's own methods.
_GEN = random._inst
_Random = type(_GEN)
#: Its private method behind ``randrange`` and ``choice`` (not in the stubs).
_randbelow: Callable[[random.Random, int], int] = _Random._randbelow  # type: ignore[attr-defined]  # (see above)

_T = TypeVar("_T")

#: ``random``'s state after ``random.seed(0)``: every run starts from it.
SEEDED = random.Random(0).getstate()

#: The alternatives of ``random()``: lowest, middle, highest.
UNIT_ALTERNATIVES = (0.0, 0.5, 1.0 - 2.0**-53)


class _RunState:
    """Per run: has the program seeded the generator itself; are we inside a draw."""

    program_seeded = False
    inside = False  # computing a seeded _randbelow: its getrandbits calls are not draws of their own


def _spread(n: int) -> tuple[int, ...]:
    return tuple(sorted({0, n // 2, n - 1}))


def _decide(what: str, seeded: _T, alternatives: tuple[_T, ...]) -> _T:
    sched = active()
    if sched is None:
        return seeded
    if sched.noting:
        sched.note_sync("draw", _GEN)  # draws of the one generator depend on their order
    if _RunState.program_seeded:
        return seeded
    picked = sched.draw_choice(len(alternatives) + 1)
    if picked == 0:
        return seeded
    value = alternatives[picked - 1]
    if sched.observer is not None:
        sched.observer.event(sched, Drew(what, value, seeded))
    return value


def controlled_random() -> float:
    return _decide("random()", _Random.random(_GEN), UNIT_ALTERNATIVES)


def controlled_getrandbits(k: int) -> int:
    seeded = _Random.getrandbits(_GEN, k)
    if _RunState.inside or k <= 0:
        return seeded
    return _decide(f"getrandbits({k})", seeded, _spread(1 << k))


def controlled_randbelow(n: int) -> int:
    _RunState.inside = True
    try:
        seeded = _randbelow(_GEN, n)
    finally:
        _RunState.inside = False
    if n <= 1:
        return seeded
    return _decide(f"a random draw below {n}", seeded, _spread(n))


def controlled_seed(*args: Any, **kwargs: Any) -> None:
    _Random.seed(_GEN, *args, **kwargs)
    _RunState.program_seeded = True


def controlled_setstate(state: Any) -> None:
    _Random.setstate(_GEN, state)
    _RunState.program_seeded = True


#: The module's own bindings and their run-time replacements (also looked for in the
#: user's modules: ``from random import random``). The other functions are methods of
#: the generator that reach it through the instance, so the instance's entries cover them.
REBOUND: list[tuple[Callable[..., Any], Callable[..., Any]]] = [
    (random.random, controlled_random),
    (random.getrandbits, controlled_getrandbits),
    (random.seed, controlled_seed),
    (random.setstate, controlled_setstate),
]
_MODULE_NAMES = {real.__name__: (real, controlled) for real, controlled in REBOUND}
_INSTANCE = {"random": controlled_random, "getrandbits": controlled_getrandbits,
             "_randbelow": controlled_randbelow}


def install() -> Any:
    """At the start of a run: seeded state, draws as choices. Returns what :func:`uninstall` needs."""
    saved = _Random.getstate(_GEN)
    _Random.setstate(_GEN, SEEDED)
    _RunState.program_seeded = False
    _RunState.inside = False
    _GEN.__dict__.update(_INSTANCE)
    for name, (_real, controlled) in _MODULE_NAMES.items():
        setattr(random, name, controlled)
    return saved


def uninstall(saved: Any) -> None:
    for name in _INSTANCE:
        _GEN.__dict__.pop(name, None)
    for name, (real, _controlled) in _MODULE_NAMES.items():
        setattr(random, name, real)
    _Random.setstate(_GEN, saved)
